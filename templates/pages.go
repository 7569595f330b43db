package templates

// ErrorPage is the data of error.html, the page every handler falls back to.
type ErrorPage struct {
	Base
	Message   string
	Code      string // an OAuth error code, when there is one
	RequestID string
}
