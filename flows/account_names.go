package flows

import (
	"context"
	"fmt"
	"net/http"

	"github.com/lanyard-idp/lanyard/provider/store"
)

// The account page's names: the officer's full name (how Lanyard and the
// applications greet them, the OIDC name claim) and their given and family
// names (given_name, family_name), which relying parties read at userinfo
// (scope profile). A change is an account change like any other: it needs a
// recent proof of the second factor.

// PathAccountNames is the names form of the account page.
const PathAccountNames = "/account/names"

const (
	msgNamesEmpty   = "Enter your name."
	msgNameBad      = "Names can be at most 200 characters, on one line."
	msgNamesChanged = "Your name was changed. Applications see it the next time they ask."
)

// Field keys of the names form (its inputs' ids, for the error summary).
const (
	fieldFullName   = "names-full"
	fieldGivenName  = "names-given"
	fieldFamilyName = "names-family"
)

func (h *Handler) postAccountNames(w http.ResponseWriter, r *http.Request, f *flow) error {
	ctx, s, u := r.Context(), f.s, f.user
	fields := []struct {
		key, form string
	}{{fieldFullName, "name"}, {fieldGivenName, "given_name"}, {fieldFamilyName, "family_name"}}
	var n Names
	dest := []*string{&n.Full, &n.Given, &n.Family}
	bad := map[string]string{}
	for i, fl := range fields {
		v, err := cleanName(r.PostForm.Get(fl.form))
		if err != nil {
			bad[fl.key] = msgNameBad
		}
		*dest[i] = v
	}
	if len(bad) == 0 && n.Full == "" && n.Given == "" && n.Family == "" {
		bad[fieldFullName] = msgNamesEmpty
	}
	if len(bad) > 0 {
		return h.showAccount(w, r, f, http.StatusUnprocessableEntity, func(p *accountPage) {
			for _, fl := range fields {
				if msg, ok := bad[fl.key]; ok {
					p.fail(fl.key, msg)
				}
			}
			p.FullName, p.GivenName, p.FamilyName = n.Full, n.Given, n.Family
		})
	}
	n, err := n.clean()
	if err != nil {
		return fmt.Errorf("names: %w", err)
	}
	changed := false
	err = h.commit(ctx, s, func(ctx context.Context) error {
		// The officer's row is rewritten whole: read it under its lock, so
		// a password changed meanwhile in another tab is not undone.
		if err := h.lockUser(ctx, u.ID); err != nil {
			return err
		}
		cur, err := h.store.UserByID(ctx, u.ID)
		if err != nil {
			return err
		}
		var what []string
		for _, c := range []struct {
			field    string
			old, new *string
		}{{"name", &cur.Name, &n.Full}, {"given_name", &cur.GivenName, &n.Given}, {"family_name", &cur.FamilyName, &n.Family}} {
			if *c.old != *c.new {
				*c.old = *c.new
				what = append(what, c.field)
			}
		}
		if len(what) == 0 {
			return nil
		}
		changed = true
		cur.UpdatedAt = h.now().UTC()
		if err := h.store.UpdateUser(ctx, cur); err != nil {
			return err
		}
		return h.audit(ctx, r, s, event{Name: store.EventNamesChange, UserID: u.ID, Username: u.Username,
			Detail: map[string]any{"fields": what}})
	})
	if err != nil {
		return err
	}
	if !changed {
		return h.back(w, r, s, "")
	}
	return h.back(w, r, s, msgNamesChanged)
}
