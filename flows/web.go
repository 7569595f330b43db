package flows

import (
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/lanyard-idp/lanyard/flows/password"
	"github.com/lanyard-idp/lanyard/templates"
)

// csp is the Content-Security-Policy of every page. No form-action: Chromium
// applies it to the redirect that follows the last POST of the journey, which
// goes to the relying party. img-src data: is for the enrolment QR code.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'"

// maxForm bounds a journey form's body: the largest honest one is a few
// hundred bytes.
const maxForm = 64 << 10

// SecurityHeaders sets the headers every Lanyard page sends: a strict CSP,
// no framing, no sniffing, no referrer, no caching (a handler may override
// Cache-Control for public documents), and HSTS outside development.
func SecurityHeaders(dev bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		if !dev {
			h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		}
		next.ServeHTTP(w, r)
	})
}

// limitForm caps the body of unsafe requests.
func limitForm(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Method != http.MethodGet && r.Method != http.MethodHead {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		}
		next.ServeHTTP(w, r)
	})
}

// handlerFunc is a page handler: it writes a page or a redirect, or returns
// an error for the one adapter to render.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// pageError is an error the officer should read: a status and a plain
// sentence. Anything else is "something went wrong on our side".
type pageError struct {
	status int
	msg    string
	cause  error
}

func (e *pageError) Error() string {
	if e.cause != nil {
		return e.msg + ": " + e.cause.Error()
	}
	return e.msg
}

func (e *pageError) Unwrap() error { return e.cause }

const msgBusy = "Lanyard is very busy right now and could not check your password. Wait a few seconds, then go back and try again."

var errFormTooLarge = &pageError{status: http.StatusRequestEntityTooLarge,
	msg: "What you sent is far longer than anything this form needs. Go back, check what you typed and try again."}

func (h *Handler) adapt(fn handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			h.renderError(w, r, err)
		}
	})
}

// renderError is the one place an error becomes a page: the officer gets a
// plain sentence, the log gets the cause, nobody gets a stack trace.
func (h *Handler) renderError(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	msg := "Something went wrong on our side. Please try again in a moment."
	var pe *pageError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		status, msg = errFormTooLarge.status, errFormTooLarge.msg
	case errors.As(err, &pe):
		status, msg = pe.status, pe.msg
	case errors.Is(err, password.ErrBusy):
		// The password hashing pool is full: nothing was checked or counted.
		status, msg = http.StatusServiceUnavailable, msgBusy
		w.Header().Set("Retry-After", strconv.Itoa(int(password.RetryAfter()/time.Second)))
	}
	switch {
	case errors.Is(err, password.ErrBusy):
		h.log.Warn("journey request refused: password hashing at capacity", "path", r.URL.Path)
	case status >= 500:
		h.log.Error("journey request failed", "path", r.URL.Path, "err", err)
	default:
		h.log.Info("journey request refused", "path", r.URL.Path, "status", status, "err", err)
	}
	data := templates.ErrorPage{
		Base:      h.base("There is a problem"),
		Message:   msg,
		RequestID: w.Header().Get("X-Request-Id"),
	}
	if rerr := h.pages.Render(w, status, "error", data); rerr != nil {
		h.log.Error("cannot render the error page", "err", rerr)
		http.Error(w, msg, status)
	}
}

// base is the layout data every page starts from.
func (h *Handler) base(title string) templates.Base {
	cfg := h.settings().cfg
	product := cfg.Journey.DisplayName
	if product == "" {
		product = "Lanyard"
	}
	return templates.Base{Product: product, Environment: cfg.Journey.Environment, Title: title}
}

// form parses the posted form (never the query string) within the body limit.
func form(r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errFormTooLarge
		}
		return &pageError{status: http.StatusBadRequest, msg: "The form could not be read. Go back, reload the page and try again.", cause: err}
	}
	return nil
}

// redirect answers with 303 See Other, so a POST is never repeated by a reload.
func redirect(w http.ResponseWriter, r *http.Request, to string) error {
	http.Redirect(w, r, to, http.StatusSeeOther)
	return nil
}

// clientAddr is the connecting address. X-Forwarded-For is not trusted: a
// client could write anything there and escape its throttle.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return truncate(r.RemoteAddr, 64)
	}
	return host
}

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
