package flows

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/lanyard-idp/lanyard/flows/password"
	"github.com/lanyard-idp/lanyard/provider/store"
	"github.com/lanyard-idp/lanyard/templates"
)

// Sign-in: the username page, then the password page. Neither reveals
// whether an account exists: every refusal reads the same, takes the same
// time and counts the same — except the one message the guide asks for, an
// expired invitation, shown only to someone who typed its correct initial
// password.

const (
	msgSignInFailed   = "The username or password is not right."
	msgInviteExpired  = "Your invitation has expired. Get a new onboarding email: choose “Didn't get your onboarding email, or has it expired?” on the sign-in page."
	msgEnterPassword  = "Enter your password."
	msgBadUsernameFmt = "Enter your username. It is the email address you were invited with, like name@agency.example."
)

func (h *Handler) getIdentify(w http.ResponseWriter, r *http.Request, f *flow) error {
	s := f.s
	data := identifyPage{page: h.page(nil, StepIdentify, "Sign in"), Passkey: h.passkeyUI(PathPasskeySignIn)}
	data.SignedOut = r.URL.Query().Get("signed_out") == "1" && s == nil
	if s != nil && len(s.j.FrontChannel) > 0 {
		// Just signed out: frame the relying parties' front-channel
		// logout addresses, once, and let the page frame exactly them.
		data.SignedOut, data.FrontChannel = true, s.j.FrontChannel
		s.j.FrontChannel = nil
		if err := h.save(r.Context(), s); err != nil {
			return err
		}
		var origins []string
		for _, f := range data.FrontChannel {
			if u, err := url.Parse(f); err == nil && !slices.Contains(origins, u.Scheme+"://"+u.Host) {
				origins = append(origins, u.Scheme+"://"+u.Host)
			}
		}
		templates.SetPageHeaders(w.Header(), f.set.cfg.Dev, origins...)
	}
	if s != nil {
		data.Username = s.j.Username
		if data.Username == "" {
			data.Username = s.j.Hint
		}
		data.ClientName = s.j.ClientName
	}
	return h.show(w, http.StatusOK, "identify", data)
}

func (h *Handler) postIdentify(w http.ResponseWriter, r *http.Request, f *flow) error {
	s := f.s
	typed := r.PostForm.Get("username")
	username, err := CanonicalUsername(typed)
	if err != nil {
		data := identifyPage{page: h.page(nil, StepIdentify, "Sign in"), Username: truncate(strings.TrimSpace(typed), 254),
			Passkey: h.passkeyUI(PathPasskeySignIn)}
		if s != nil {
			data.ClientName = s.j.ClientName
		}
		data.fail("username", msgBadUsernameFmt)
		return h.show(w, http.StatusBadRequest, "identify", data)
	}
	if s == nil {
		if s, err = h.create(r.Context(), w, r); err != nil {
			return err
		}
	}
	s.j.Username = username
	if err := h.save(r.Context(), s); err != nil {
		return err
	}
	return redirect(w, r, PathNext)
}

func (h *Handler) getPassword(w http.ResponseWriter, r *http.Request, f *flow) error {
	return h.show(w, http.StatusOK, "password", h.passwordPage(f))
}

func (h *Handler) passwordPage(f *flow) passwordPage {
	return passwordPage{page: h.page(f, StepPassword, "Enter your password"), Username: f.s.j.Username}
}

func (h *Handler) postPassword(w http.ResponseWriter, r *http.Request, f *flow) error {
	s := f.s
	ctx := r.Context()
	pw := r.PostForm.Get("password")
	if pw == "" {
		data := h.passwordPage(f)
		data.fail("password", msgEnterPassword)
		return h.show(w, http.StatusBadRequest, "password", data)
	}
	refuse := func(msg string) error {
		data := h.passwordPage(f)
		data.fail("password", msg)
		return h.show(w, http.StatusUnprocessableEntity, "password", data)
	}

	username := s.j.Username
	u, err := h.store.UserByUsername(ctx, username)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if errors.Is(err, store.ErrNotFound) {
		u = nil
	}
	ev := event{Username: username, Detail: map[string]any{"factor": "password"}}
	if u != nil {
		ev.UserID = u.ID
	}
	k := h.passwordKeys(r, username, u)

	locked, err := h.attempt(ctx, &k)
	if err != nil {
		return err
	}
	defer h.release(k)
	if locked {
		// Locked, even for the right password; it reads like a wrong one.
		if err := password.VerifyDummy(pw); err != nil {
			return err // busy: 503, nothing counted
		}
		ev.Name, ev.Detail["reason"] = evSigninFailure, store.ReasonLocked
		h.auditFailure(ctx, r, s, k, ev)
		return refuse(msgSignInFailed)
	}

	ok := false
	if u == nil {
		if err := password.VerifyDummy(pw); err != nil {
			return err // busy: 503, nothing counted
		}
		ev.Detail["reason"] = store.ReasonUnknownUser
	} else {
		ok, err = password.Verify(u.PasswordHash, pw)
		if errors.Is(err, password.ErrBusy) {
			return err
		}
		if err != nil {
			h.log.Error("stored password hash is unreadable", "user", u.ID, "err", err)
			ok = false
		}
		ev.Detail["reason"] = store.ReasonWrongPassword
	}
	if ok && u.State == store.UserDisabled {
		ok, ev.Detail["reason"] = false, store.ReasonDisabled
	}
	if !ok {
		if err := h.failed(ctx, r, s, k, ev); err != nil {
			return err
		}
		return refuse(msgSignInFailed)
	}
	now := h.now().UTC()
	if h.initialExpired(u) {
		ev.Name, ev.Detail["reason"] = evSigninFailure, store.ReasonInvitationExpired
		h.auditLog(ctx, r, s, ev)
		return refuse(msgInviteExpired)
	}
	// A correct password clears no counter: only a whole sign-in does
	// (complete), or "correct password, wrong codes" could go on for ever.

	s.newSignIn(u, now)
	err = h.commitGuessed(w, r, s, k, func(ctx context.Context) error {
		return h.audit(ctx, r, s, event{Name: evSigninPassword, UserID: u.ID, Username: u.Username})
	})
	if errors.Is(err, store.ErrNotFound) {
		// Another request of this browser rotated the session first.
		return redirect(w, r, PathNext)
	}
	if err != nil {
		return err
	}
	return redirect(w, r, PathNext)
}
