package flows

// The console's audit page (data-page="audit": the trail newest first,
// filtered by officer, event and time, and the chain's verification on
// request) and clients page (data-page="clients": the relying parties of
// the configuration, read-only, with where each is defined).

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/lanyard-idp/lanyard/provider/store"
)

// auditShown is the length of a page of the audit trail.
const auditShown = 50

var eventFilterRE = regexp.MustCompile(`^[a-z_]+(\.[a-z_]+)*\.?$`)

type auditPage struct {
	consolePage
	Officer, Event, Since, Until string
	Events                       []auditRow
	Next                         string // older events, "" when none
	Verify                       string // the address that verifies the chain
	Chain                        string // the verification's result, "" when not asked
	ChainOK                      bool
}

type auditRow struct {
	ID                                   int64
	At, Event, Officer, By, Addr, Detail string
}

// dateLayout of the filter's date boxes (input type=date).
const dayLayout = "2006-01-02"

func (h *Handler) consoleAudit(w http.ResponseWriter, r *http.Request, c *console) error {
	ctx, q := r.Context(), r.URL.Query()
	p := auditPage{consolePage: h.consolePage(c, "audit", "Audit trail")}
	p.Officer = strings.TrimSpace(truncate(q.Get("officer"), 254))
	p.Event = strings.TrimSpace(truncate(q.Get("event"), 64))
	p.Since, p.Until = truncate(q.Get("since"), 10), truncate(q.Get("until"), 10)
	aq := store.AuditQuery{Limit: auditShown + 1}
	if p.Officer != "" {
		username, err := CanonicalUsername(p.Officer)
		if err != nil {
			p.fail("officer", "Enter the officer's email address, like name@agency.example.")
		} else if u, err := h.store.UserByUsername(ctx, username); err == nil {
			aq.UserID = u.ID
		} else if errors.Is(err, store.ErrNotFound) {
			aq.Username = username // a request, or an account since removed
		} else {
			return err
		}
	}
	if p.Event != "" {
		if !eventFilterRE.MatchString(p.Event) {
			p.fail("event", "Enter an event name, like signin.failure, or a family ending in a dot, like admin.")
		}
		aq.Event = p.Event
	}
	day := func(field, v string) time.Time {
		if v == "" {
			return time.Time{}
		}
		t, err := time.Parse(dayLayout, v)
		if err != nil {
			p.fail(field, "Enter a date as year-month-day, like 2026-11-26.")
		}
		return t
	}
	aq.Since = day("since", p.Since)
	if t := day("until", p.Until); !t.IsZero() {
		aq.Until = t.Add(24 * time.Hour) // the whole day
	}
	if len(p.Errors) > 0 {
		return h.show(w, http.StatusBadRequest, "admin-audit", p)
	}
	if b := q.Get("before"); b != "" {
		id, err := strconv.ParseInt(b, 10, 64)
		if err != nil || id <= 0 {
			return &pageError{Status: http.StatusBadRequest, Message: "This page of the audit trail does not exist: start again from the newest events."}
		}
		aq.BeforeID = id
	}
	filters := url.Values{"officer": {p.Officer}, "event": {p.Event}, "since": {p.Since}, "until": {p.Until}}
	events, err := h.store.AuditPage(ctx, aq)
	if err != nil {
		return err
	}
	if len(events) > auditShown {
		events = events[:auditShown]
		next := url.Values{}
		for k, v := range filters {
			next[k] = v
		}
		next.Set("before", strconv.FormatInt(events[len(events)-1].ID, 10))
		p.Next = PathAdminAudit + "?" + next.Encode()
	}
	names := map[string]string{}
	for _, e := range events {
		row := auditRow{ID: e.ID, At: when(e.At), Event: string(e.Event), Officer: e.Username, Addr: e.ClientAddr}
		var detail map[string]any
		if json.Unmarshal(e.Detail, &detail) == nil {
			if by, ok := detail["by"].(string); ok {
				if _, known := names[by]; !known {
					names[by] = h.admin().ActorName(ctx, by)
				}
				row.By = names[by]
				delete(detail, "by")
			}
			if len(detail) > 0 {
				b, _ := json.Marshal(detail)
				row.Detail = truncate(string(b), 300)
			}
		}
		p.Events = append(p.Events, row)
	}
	verify := url.Values{}
	for k, v := range filters {
		verify[k] = v
	}
	verify.Set("verify", "1")
	p.Verify = PathAdminAudit + "?" + verify.Encode() + "#chain"
	if q.Get("verify") == "1" {
		bad, err := h.store.VerifyAudit(ctx)
		if err != nil {
			return err
		}
		last, err := h.store.LastAuditID(ctx)
		if err != nil {
			return err
		}
		p.ChainOK = bad == 0
		p.Chain = fmt.Sprintf("The chain is intact: every event up to #%d follows from the one before it (checked %s).", last, when(h.now()))
		if bad != 0 {
			p.Chain = fmt.Sprintf("The chain is broken at event #%d: it, or the event before it, was changed or removed in the database.", bad)
		}
	}
	return h.show(w, http.StatusOK, "admin-audit", p)
}

type clientsPage struct {
	consolePage
	Clients []clientView
}

type clientView struct {
	ID, Name, Kind, AuthMethod, Source string
	Grants, Scopes                     string
	Redirects, PostLogout              []string
}

func (h *Handler) consoleClients(w http.ResponseWriter, r *http.Request, c *console) error {
	cfg := h.settings().cfg
	p := clientsPage{consolePage: h.consolePage(c, "clients", "Relying parties")}
	src := cfg.Source
	if src == "" {
		src = "dev.yaml (built in)"
	}
	for _, cl := range cfg.Clients {
		v := clientView{ID: cl.ID, Name: cl.Name, AuthMethod: cl.TokenEndpointAuthMethod, Source: src,
			Grants: strings.Join(cl.GrantTypes, ", "), Scopes: strings.Join(cl.Scopes, ", "),
			Redirects: cl.RedirectURIs, PostLogout: cl.PostLogoutRedirectURIs, Kind: "Confidential"}
		if cl.Public {
			v.Kind = "Public (PKCE)"
		}
		if cl.Line > 0 {
			v.Source = fmt.Sprintf("%s, line %d", src, cl.Line)
		}
		p.Clients = append(p.Clients, v)
	}
	return h.show(w, http.StatusOK, "admin-clients", p)
}
