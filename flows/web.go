package flows

import (
	"errors"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/lanyard-idp/lanyard/flows/password"
	"github.com/lanyard-idp/lanyard/provider/authn"
	"github.com/lanyard-idp/lanyard/templates"
)

// maxForm bounds a journey form's body: the largest honest one is a few
// hundred bytes.
const maxForm = 64 << 10

// maxUpload bounds the console's CSV of invitations (a thousand rows fit).
const maxUpload = 512 << 10

// limitForm caps the body of unsafe requests.
func limitForm(next http.Handler) http.Handler { return limitBody(maxForm, next) }

// limitBody caps the body of unsafe requests at n bytes.
func limitBody(n int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Method != http.MethodGet && r.Method != http.MethodHead {
			r.Body = http.MaxBytesReader(w, r.Body, n)
		}
		next.ServeHTTP(w, r)
	})
}

// handlerFunc is a page handler: it writes a page or a redirect, or returns
// an error for the one adapter to render.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// pageError is an error the officer should read: a status and a plain
// sentence (templates.Error, shared with the provider's pages). Anything
// else is "something went wrong on our side".
type pageError = templates.Error

var errFormTooLarge = templates.ErrTooLarge

const msgBusy = "Lanyard is very busy right now and could not check your password. Wait a few seconds, then go back and try again."

func (h *Handler) adapt(fn handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			h.renderError(w, r, err)
		}
	})
}

// renderError turns an error into the error page, by the one path every
// page of Lanyard shares (templates.ServeError): the officer gets a plain
// sentence, the log gets the cause, nobody gets a stack trace.
func (h *Handler) renderError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, password.ErrBusy) {
		// The argon2id pool is full (flows/password): nothing was checked or
		// counted; the officer sends the same form again after a moment.
		w.Header().Set("Retry-After", strconv.Itoa(int(password.RetryAfter()/time.Second)))
		err = &pageError{Status: http.StatusServiceUnavailable, Message: msgBusy, Cause: err}
	}
	h.pages.ServeError(w, r, h.log, h.base(""), err)
}

// base is the layout data every page starts from.
func (h *Handler) base(title string) templates.Base {
	cfg := h.settings().cfg
	return templates.Base{Product: cfg.Journey.DisplayName, Environment: cfg.Journey.Environment, Title: title}
}

// form parses the posted form (never the query string) within the body limit.
func form(r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errFormTooLarge
		}
		return &pageError{Status: http.StatusBadRequest, Message: "The form could not be read. Go back, reload the page and try again.", Cause: err}
	}
	return nil
}

// redirect answers with 303 See Other, so a POST is never repeated by a reload.
func redirect(w http.ResponseWriter, r *http.Request, to string) error {
	http.Redirect(w, r, to, http.StatusSeeOther)
	return nil
}

// clientAddr is the request's client address, computed as the provider
// computes it (authn.ClientAddr).
func clientAddr(r *http.Request) string { return authn.ClientAddr(r) }

// truncate cuts s to at most n bytes without splitting a character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
