package flows

// The console's invite page (data-page="invite"): one officer (email and
// name; data-action="invite"), or many from a CSV pasted or uploaded
// (email, name[, organisation]; data-action="preview"), shown first as a
// preview that marks each row's problem before anything is sent, then sent
// (data-action="invite-csv": the rows without a problem) with a summary
// of what happened to each.

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/lanyard-idp/lanyard/provider/store"
)

// maxCSVRows bounds one CSV: each invitation hashes a password and sends an
// email, and the whole list is sent in one request.
const maxCSVRows = 100

type invitePage struct {
	consolePage
	Email, Name string
	CSV         string
	Rows        []csvRow // the preview, or the summary after sending
	Ready       int      // rows without a problem
	Sent        bool     // Rows is the summary
	MaxRows     int
	Orgs        []string
}

// csvRow is one row of a CSV of invitations: what it says, and its problem
// ("" none) or, after sending, what happened.
type csvRow struct {
	Line                      int
	Email, Name, Organisation string
	Problem                   string
	Result                    string
}

func (h *Handler) invitePage(c *console) invitePage {
	return invitePage{consolePage: h.consolePage(c, "invite", "Invite officers"), MaxRows: maxCSVRows, Orgs: h.settings().cfg.Requests.Organisations}
}

func (h *Handler) consoleInvite(w http.ResponseWriter, r *http.Request, c *console) error {
	return h.show(w, http.StatusOK, "admin-invite", h.invitePage(c))
}

// postInvite invites one officer.
func (h *Handler) postInvite(w http.ResponseWriter, r *http.Request, c *console) error {
	p := h.invitePage(c)
	p.Email = truncate(strings.TrimSpace(r.PostForm.Get("email")), 254)
	p.Name = truncate(r.PostForm.Get("name"), 4*maxNameRunes)
	if p.Email == "" {
		p.fail("email", "Enter the officer's email address, like name@agency.example.")
	}
	if strings.TrimSpace(p.Name) == "" {
		p.fail("name", "Enter the officer's full name, as the onboarding email greets them.")
	}
	if len(p.Errors) > 0 {
		return h.show(w, http.StatusUnprocessableEntity, "admin-invite", p)
	}
	inv, err := h.admin().Invite(r.Context(), c.by(), p.Email, Names{Full: p.Name})
	if msg, ok := consoleRefusal(err, p.Email); ok {
		field := "email"
		if errors.Is(err, ErrBadName) {
			field = "name"
		}
		p.fail(field, msg)
		return h.show(w, http.StatusUnprocessableEntity, "admin-invite", p)
	}
	if err != nil {
		return err
	}
	notice := fmt.Sprintf("Invited %s: the onboarding email is on its way (valid until %s).", inv.Username, when(inv.ExpiresAt))
	if inv.MailErr != nil {
		notice = fmt.Sprintf("Invited %s, but the onboarding email could not be sent: resend the invitation from the officer's page.", inv.Username)
	}
	return h.done(w, r, c, notice, PathAdminInvite)
}

// postCSVPreview shows what a CSV would do, row by row; nothing is sent.
func (h *Handler) postCSVPreview(w http.ResponseWriter, r *http.Request, c *console) error {
	p := h.invitePage(c)
	text, err := csvText(r)
	if err != nil {
		return err
	}
	p.CSV = text
	if strings.TrimSpace(text) == "" {
		p.fail("csv", "Paste the list, or choose a CSV file: one officer a line, email, name[, organisation].")
		return h.show(w, http.StatusUnprocessableEntity, "admin-invite", p)
	}
	rows, msg, err := h.checkCSV(r.Context(), text)
	if err != nil {
		return err
	}
	if msg != "" {
		p.fail("csv", msg)
		return h.show(w, http.StatusUnprocessableEntity, "admin-invite", p)
	}
	p.Rows = rows
	for _, row := range rows {
		if row.Problem == "" {
			p.Ready++
		}
	}
	return h.show(w, http.StatusOK, "admin-invite", p)
}

// postCSVSend invites the rows of the CSV that have no problem now (each
// is checked again: time has passed since the preview), and shows what
// happened to every row.
func (h *Handler) postCSVSend(w http.ResponseWriter, r *http.Request, c *console) error {
	p := h.invitePage(c)
	text, err := csvText(r)
	if err != nil {
		return err
	}
	rows, msg, err := h.checkCSV(r.Context(), text)
	if err != nil {
		return err
	}
	if msg != "" || len(rows) == 0 {
		p.CSV = text
		p.fail("csv", cmpOr(msg, "The list is empty."))
		return h.show(w, http.StatusUnprocessableEntity, "admin-invite", p)
	}
	a := h.admin()
	failed := 0
	for i := range rows {
		row := &rows[i]
		if row.Problem != "" {
			row.Result = "Not sent: " + row.Problem
			continue
		}
		inv, err := a.Invite(r.Context(), c.by(), row.Email, Names{Full: row.Name})
		if m, ok := consoleRefusal(err, row.Email); ok {
			row.Result = "Not sent: " + m
			continue
		}
		if err != nil {
			// Nothing of this row was stored (one transaction); the rows
			// before it are invited, and the page must say which.
			h.log.Error("console: a CSV invitation failed", "line", row.Line, "err", err)
			failed++
			row.Result = "Not sent: something went wrong on our side, and nothing was stored for this officer. Send the list again: the rows already invited will say so."
			continue
		}
		p.Ready++
		row.Result = "Invited; the onboarding email is on its way (valid until " + when(inv.ExpiresAt) + ")."
		if inv.MailErr != nil {
			row.Result = "Invited, but the email could not be sent: resend the invitation from the officer's page."
		}
	}
	p.Rows, p.Sent = rows, true
	p.Notice = fmt.Sprintf("%d of %d %s invited.", p.Ready, len(rows), plural(len(rows), "officer", "officers"))
	if failed > 0 {
		p.Notice += fmt.Sprintf(" %d could not be sent because of an error on our side: send the list again.", failed)
	}
	return h.show(w, http.StatusOK, "admin-invite", p)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// csvText is the CSV of the form: the uploaded file (csv_file) when one
// was chosen, else the pasted text (csv).
func csvText(r *http.Request) (string, error) {
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/") {
		return r.PostForm.Get("csv"), nil
	}
	if err := r.ParseMultipartForm(maxUpload); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return "", errFormTooLarge
		}
		return "", &pageError{Status: http.StatusBadRequest, Message: "The form could not be read. Go back, reload the page and try again.", Cause: err}
	}
	defer r.MultipartForm.RemoveAll()
	if fs := r.MultipartForm.File["csv_file"]; len(fs) > 0 && fs[0].Size > 0 {
		f, err := fs[0].Open()
		if err != nil {
			return "", err
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxUpload))
		if err != nil {
			return "", err
		}
		return string(b), nil
	}
	return r.PostFormValue("csv"), nil
}

// checkCSV reads a CSV of invitations and marks each row's problem: not an
// address the invitation policy allows, no name, an organisation not in the
// list, an address twice, or one that already has an account. msg is a
// problem of the whole text (not CSV, too many rows).
func (h *Handler) checkCSV(ctx context.Context, text string) (rows []csvRow, msg string, err error) {
	a, orgs := h.admin(), h.settings().cfg.Requests.Organisations
	cr := csv.NewReader(strings.NewReader(strings.TrimPrefix(text, "\ufeff")))
	cr.FieldsPerRecord, cr.TrimLeadingSpace = -1, true
	seen := map[string]int{}
	first := true
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			line := 0
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				line = pe.Line
			}
			return nil, fmt.Sprintf("Line %d is not valid CSV (%s): check its quotes and commas.", line, errorText(err)), nil
		}
		line, _ := cr.FieldPos(0)
		for i := range rec {
			rec[i] = strings.TrimSpace(rec[i])
		}
		firstRecord := first
		first = false
		if firstRecord && strings.EqualFold(rec[0], "email") {
			continue // a header
		}
		if len(rows) == maxCSVRows {
			return nil, fmt.Sprintf("The list has more than %d rows: split it and send each part.", maxCSVRows), nil
		}
		row := csvRow{Line: line, Email: truncate(rec[0], 254)}
		if len(rec) > 1 {
			row.Name = truncate(rec[1], 4*maxNameRunes)
		}
		if len(rec) > 2 {
			row.Organisation = truncate(rec[2], 4*maxOrganisationRunes)
		}
		row.Problem = h.rowProblem(ctx, a, orgs, rec, &row, seen)
		rows = append(rows, row)
	}
	return rows, "", nil
}

// errorText is what the csv package said, without its "record on line"
// preamble (the message names the line itself).
func errorText(err error) string {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func (h *Handler) rowProblem(ctx context.Context, a *Admin, orgs []string, rec []string, row *csvRow, seen map[string]int) string {
	if len(rec) < 2 || rec[1] == "" {
		return "no name: each row is email, name[, organisation]"
	}
	if len(rec) > 3 {
		return "more than three columns: each row is email, name[, organisation]"
	}
	username, err := a.AddressPolicy(row.Email)
	switch {
	case errors.Is(err, ErrBadUsername):
		return "not an email address"
	case errors.Is(err, ErrRefusedMailbox):
		return "a refused mailbox (LiteMail or similar): use the officer's standard mailbox"
	case errors.Is(err, ErrDomainNotAllowed):
		return "not in an allowed domain (" + strings.Join(h.settings().cfg.Invitations.AllowedDomains, ", ") + ")"
	case err != nil:
		return "refused by the invitation policy: " + consoleMessage(err, row.Email)
	}
	row.Email = username
	if first, dup := seen[username]; dup {
		return fmt.Sprintf("the same address as line %d", first)
	}
	seen[username] = row.Line
	name, err := cleanName(row.Name)
	if err != nil {
		return "the name must be one line of at most 200 characters"
	}
	row.Name = name
	if org, err := cleanText(row.Organisation, maxOrganisationRunes, false); err != nil {
		return "the organisation must be one line of at most 200 characters"
	} else if len(orgs) > 0 && org != "" && !slices.Contains(orgs, org) {
		return "the organisation is not one of: " + strings.Join(orgs, ", ")
	} else {
		row.Organisation = org
	}
	u, err := h.store.UserByUsername(ctx, username)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return ""
	case err != nil:
		return "could not be checked: try again"
	case u.State == store.UserActive:
		return "already has an active account"
	case u.State == store.UserDisabled:
		return "has a disabled account: enable it instead"
	}
	return "already invited: resend the invitation from the officer's page"
}
