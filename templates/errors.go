package templates

import (
	"errors"
	"log/slog"
	"net/http"
)

// Error is an error its reader should be told about: the status of the
// answer and one plain sentence, optionally a heading and an OAuth error
// code. The journey, the account page, the passkey endpoints and the
// provider's own pages (authorize, resume, end_session) all return or
// build it; Classify turns any error into one, so that every error reaches
// the reader by one path: classify once, then render for the request at
// hand (the error page, or JSON for a script).
type Error struct {
	Status  int
	Title   string // the page's heading; "" is "There is a problem"
	Message string // what the reader is told, never the cause
	Code    string // an OAuth error code, shown on the page when set
	Cause   error  // for the log only
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return e.Message + ": " + e.Cause.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Cause }

// ErrTooLarge answers a request body over its limit.
var ErrTooLarge = &Error{Status: http.StatusRequestEntityTooLarge,
	Message: "What you sent is far longer than anything this form needs. Go back, check what you typed and try again."}

const (
	defaultErrorTitle = "There is a problem"
	msgServerFault    = "Something went wrong on our side. Please try again in a moment."
)

// Classify decides what the reader of a failed request is told: the Error
// that err is or wraps; a body over its limit (http.MaxBytesError) as
// ErrTooLarge; anything else as a 500 "something went wrong on our side".
// The result's Cause is err, so the log keeps the whole story.
func Classify(err error) *Error {
	var mbe *http.MaxBytesError
	var e *Error
	c := &Error{Status: http.StatusInternalServerError, Message: msgServerFault, Cause: err}
	switch {
	case errors.As(err, &mbe):
		c.Status, c.Message = ErrTooLarge.Status, ErrTooLarge.Message
	case errors.As(err, &e):
		c.Status, c.Title, c.Message, c.Code = e.Status, e.Title, e.Message, e.Code
	}
	return c
}

// Log writes the one log line of a classified error, with its cause and in
// the request's context (so the line carries the request id): a fault of
// ours (5xx) as an error, a refusal of the request as information.
func (e *Error) Log(log *slog.Logger, r *http.Request) {
	if e.Status >= 500 {
		log.ErrorContext(r.Context(), "request failed", "path", r.URL.Path, "status", e.Status, "err", e.Cause)
		return
	}
	log.InfoContext(r.Context(), "request refused", "path", r.URL.Path, "status", e.Status, "err", e.Cause)
}

// ServeError is the one path from an error to a page: Classify, Log, then
// the error page ("error") with the product and environment of base and the
// request's reference (the X-Request-Id the server set). Nothing on it
// comes from the cause; nobody sees a stack trace.
func (s *Set) ServeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, base Base, err error) {
	e := Classify(err)
	e.Log(log, r)
	base.Title = e.Title
	if base.Title == "" {
		base.Title = defaultErrorTitle
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	data := ErrorPage{Base: base, Message: e.Message, Code: e.Code, RequestID: h.Get("X-Request-Id")}
	if rerr := s.Render(w, e.Status, "error", data); rerr != nil {
		log.Error("cannot render the error page", "err", rerr)
		http.Error(w, e.Message, e.Status)
	}
}
