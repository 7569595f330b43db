package flows

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/provider/store"
)

// TestConsoleSignIn: the console parks itself, sends the browser through
// the journey and comes back to the page asked for; it asks for the second
// factor of the sign-in, refuses an officer who is not an admin (audited),
// and sends every page with the journey's security headers.
func TestConsoleSignIn(t *testing.T) {
	t.Parallel()
	e := newConsoleEnv(t)
	r := e.browser().get("/admin/officers?q=desk")
	if r.status != http.StatusSeeOther || r.location != PathSignIn {
		t.Fatalf("anonymous console: %d to %q", r.status, r.location)
	}
	b, r := e.signIn(helpdesk, "/admin/officers?q=desk")
	if !strings.HasSuffix(r.url, "/admin/officers?q=desk") || r.page() != "officers" {
		t.Fatalf("the sign-in ended at %s (page %q)", r.url, r.page())
	}
	checkPage(t, r)
	if got := r.header.Get("X-Frame-Options"); got != "DENY" {
		t.Errorf("X-Frame-Options %q", got)
	}
	mustStatus(t, b.get(PathAdmin), http.StatusSeeOther)

	// An officer without a role: signed in, refused, audited.
	sb, r := e.signIn(plainStaff, PathAdmin)
	mustStatus(t, r, http.StatusForbidden)
	if !strings.Contains(text(r.doc), msgNotAdmin) {
		t.Fatalf("a non-admin: %s", text(r.doc))
	}
	mustStatus(t, sb.post(PathAdminInvite, url.Values{"email": {"x@agency.example"}, "name": {"X"}}), http.StatusForbidden)
	if _, err := e.st.UserByUsername(t.Context(), "x@agency.example"); err == nil {
		t.Fatal("a non-admin invited someone")
	}
	evs := e.eventsOf(store.EventConsoleForbidden)
	if len(evs) != 2 || evs[0].Username != plainStaff || !strings.Contains(string(evs[1].Detail), string(store.ReasonNotAdmin)) {
		t.Fatalf("refusals audited as %+v", evs)
	}

	// An admin signed in without a second factor (a journey that does not
	// ask for one) is refused.
	nf := newConsoleEnv(t, withoutMFA)
	if err := nf.st.DeleteTOTP(t.Context(), nf.users[bossAdmin].ID); err != nil {
		t.Fatal(err)
	}
	pb := nf.browser()
	pr := pb.open(PathAdminClients)
	pr = pb.follow(pb.submit(pr, map[string]string{"username": bossAdmin}))
	pr = pb.follow(pb.submit(pr, map[string]string{"password": alicePw}))
	mustStatus(t, pr, http.StatusForbidden)
	if !strings.Contains(text(pr.doc), "second factor") {
		t.Fatalf("an admin without a second factor: %s", text(pr.doc))
	}
}

// TestConsoleRoles tries every page and every action as every role: what a
// role lacks it does not see, and a request for it anyway is a 403 that is
// audited and changes nothing.
func TestConsoleRoles(t *testing.T) {
	t.Parallel()
	e := newConsoleEnv(t)
	const target = "target@agency.example"
	pages := []struct {
		path, page string
		roles      []string // who may
	}{
		{PathAdminRequests, "requests", []string{bossAdmin, approver}},
		{PathAdminOfficers, "officers", []string{bossAdmin, helpdesk}},
		{PathAdminInvite, "invite", []string{bossAdmin}},
		{PathAdminAudit, "audit", []string{bossAdmin, helpdesk}},
		{PathAdminClients, "clients", []string{bossAdmin}},
	}
	actions := []struct {
		name  string
		roles []string
		// state puts the target in a state where the action applies.
		state func(u *store.User)
	}{
		{"resend", []string{bossAdmin, helpdesk}, e.invitedState},
		{"revoke", []string{bossAdmin}, e.invitedState},
		{"disable", []string{bossAdmin}, e.activeState},
		{"enable", []string{bossAdmin}, e.disabledState},
		{"unlock", []string{bossAdmin, helpdesk}, e.lockedState},
		{"reset-mfa", []string{bossAdmin, helpdesk}, e.activeState},
		{"reset-password", []string{bossAdmin, helpdesk}, e.activeState},
		{"sign-out", []string{bossAdmin, helpdesk}, e.signedInState},
	}
	for _, who := range []string{bossAdmin, approver, helpdesk} {
		t.Run(who, func(t *testing.T) {
			b, _ := e.signIn(who, PathAdmin)
			var nav []string
			for _, p := range pages {
				r := b.get(p.path)
				allowed := slices.Contains(p.roles, who)
				if allowed {
					mustStatus(t, r, http.StatusOK)
					if r.page() != p.page {
						t.Errorf("%s: data-page %q", p.path, r.page())
					}
					for _, a := range findAll(r.doc, func(n *html.Node) bool { return n.Data == "nav" && attr(n, "aria-label") == "Admin console" }) {
						nav = nil
						for _, l := range findAll(a, func(n *html.Node) bool { return n.Data == "a" }) {
							nav = append(nav, attr(l, "href"))
						}
					}
				} else {
					mustStatus(t, r, http.StatusForbidden)
				}
			}
			var want []string
			for _, p := range pages {
				if slices.Contains(p.roles, who) {
					want = append(want, p.path)
				}
			}
			if !slices.Equal(nav, want) {
				t.Errorf("navigation %v, want %v", nav, want)
			}
			for _, a := range actions {
				u := e.freshTarget(target)
				a.state(u)
				allowed := slices.Contains(a.roles, who)
				if slices.Contains([]string{bossAdmin, helpdesk}, who) {
					// The page shows the action exactly when the role has it.
					page := b.get(consoleOfficerPath(u.ID))
					mustStatus(t, page, http.StatusOK)
					if got := slices.Contains(page.actions(), a.name); got != allowed {
						t.Errorf("%s sees %q: %v, want %v (actions %v)", who, a.name, got, allowed, page.actions())
					}
				}
				before := len(e.eventsOf(store.EventConsoleForbidden))
				changes := e.countAdminChanges()
				r := b.post(consoleOfficerPath(u.ID)+"/"+a.name, nil)
				if allowed {
					if r.status != http.StatusSeeOther {
						t.Errorf("%s %s: %d %s", who, a.name, r.status, r.errorSummary())
					}
					if e.countAdminChanges() != changes+1 {
						t.Errorf("%s %s: no admin change audited", who, a.name)
					}
					continue
				}
				mustStatus(t, r, http.StatusForbidden)
				if n := len(e.eventsOf(store.EventConsoleForbidden)); n != before+1 {
					t.Errorf("%s %s: forged POST audited %d times", who, a.name, n-before)
				}
				if e.countAdminChanges() != changes {
					t.Errorf("%s %s: a refused action changed something", who, a.name)
				}
			}
		})
	}
	// Request decisions and invitations, by every role.
	a := e.h.admin()
	pendingRequest := func(who string) string {
		t.Helper()
		if err := a.submitRequest(t.Context(), who, RequestInput{Name: "Pat Pending", Reason: "x"}, "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
		r, err := e.st.OpenAccountRequest(t.Context(), who)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.st.VerifyAccountRequest(t.Context(), r.ID, e.clock.Now(), e.clock.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		return r.ID
	}
	for i, who := range []string{bossAdmin, approver, helpdesk} {
		b, _ := e.signIn(who, PathAdmin)
		decides := who != helpdesk
		for _, action := range []string{"approve", "deny"} {
			id := pendingRequest(fmt.Sprintf("pat.%s.%d@agency.example", action, i))
			before := len(e.eventsOf(store.EventConsoleForbidden))
			r := b.post("/admin/requests/"+id+"/"+action, url.Values{"reason": {"Not this time."}})
			got, err := e.st.AccountRequestByID(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if decides {
				mustRedirect(t, r, PathAdminRequests)
				if got.Status == store.RequestPending || got.DecidedBy != e.users[who].ID {
					t.Errorf("%s %s: %+v", who, action, got)
				}
				continue
			}
			mustStatus(t, r, http.StatusForbidden)
			if got.Status != store.RequestPending || len(e.eventsOf(store.EventConsoleForbidden)) != before+1 {
				t.Errorf("%s %s: the refusal changed %+v or was not audited", who, action, got)
			}
		}
		invitee := fmt.Sprintf("invitee%d@agency.example", i)
		r := b.post(PathAdminInvite, url.Values{"email": {invitee}, "name": {"In Vitee"}})
		_, err := e.st.UserByUsername(t.Context(), invitee)
		if who == bossAdmin {
			mustRedirect(t, r, PathAdminInvite)
			if err != nil {
				t.Errorf("the admin's invitation: %v", err)
			}
		} else {
			mustStatus(t, r, http.StatusForbidden)
			if err == nil {
				t.Errorf("%s invited someone", who)
			}
		}
		csvInvitee := fmt.Sprintf("csv%d@agency.example", i)
		r = b.post(PathAdminCSVSend, url.Values{"csv": {csvInvitee + ",Cee Ess"}})
		if _, err := e.st.UserByUsername(t.Context(), csvInvitee); (err == nil) != (who == bossAdmin) || (who != bossAdmin && r.status != http.StatusForbidden) {
			t.Errorf("%s sending a CSV: status %d, account made: %v", who, r.status, err == nil)
		}
	}
}

// freshTarget deletes and recreates the role-less officer the role test
// acts on, active and ready.
func (e *consoleEnv) freshTarget(username string) *store.User {
	e.t.Helper()
	if u, err := e.st.UserByUsername(e.t.Context(), username); err == nil {
		if err := e.st.DeleteUser(e.t.Context(), u.ID); err != nil {
			e.t.Fatal(err)
		}
		for _, k := range accountKeys(u) {
			e.st.ResetThrottle(e.t.Context(), k)
		}
	}
	return e.seedWithApp(username)
}

func (e *consoleEnv) invitedState(u *store.User) {
	e.t.Helper()
	u.State, u.PasswordInitial, u.InviteExpiresAt = store.UserInvited, true, e.clock.Now().Add(24*time.Hour)
	if err := e.st.UpdateUser(e.t.Context(), u); err != nil {
		e.t.Fatal(err)
	}
}

func (e *consoleEnv) activeState(*store.User) {}

func (e *consoleEnv) disabledState(u *store.User) {
	e.t.Helper()
	u.State = store.UserDisabled
	if err := e.st.UpdateUser(e.t.Context(), u); err != nil {
		e.t.Fatal(err)
	}
}

func (e *consoleEnv) lockedState(u *store.User) {
	e.t.Helper()
	if err := e.st.Lock(e.t.Context(), "acct:"+u.ID, e.clock.Now().Add(time.Hour), 1); err != nil {
		e.t.Fatal(err)
	}
}

func (e *consoleEnv) signedInState(u *store.User) {
	e.t.Helper()
	if err := e.st.CreateSession(e.t.Context(), &store.Session{ID: "session-of-the-target-" + u.ID, UserID: u.ID, State: stateAuthenticated,
		CreatedAt: e.clock.Now(), LastSeenAt: e.clock.Now(), ExpiresAt: e.clock.Now().Add(time.Hour)}); err != nil {
		e.t.Fatal(err)
	}
}

// countAdminChanges counts the audit events of admin changes to accounts.
func (e *consoleEnv) countAdminChanges() int {
	n := 0
	for _, ev := range e.events("") {
		if strings.HasPrefix(ev, "admin.user.") || strings.HasPrefix(ev, "invite") {
			n++
		}
	}
	return n
}

// TestConsoleHigherRoleAndSelf: nobody acts on an account with a higher
// role, nor resets their own second factor (or disables themselves) here.
func TestConsoleHigherRoleAndSelf(t *testing.T) {
	t.Parallel()
	e := newConsoleEnv(t)
	desk, _ := e.signIn(helpdesk, PathAdmin)
	r := desk.get(consoleOfficerPath(e.users[bossAdmin].ID))
	mustStatus(t, r, http.StatusOK)
	if len(r.actions()) != 0 || !strings.Contains(text(r.doc), msgConsoleHigher) {
		t.Fatalf("the helpdesk on an admin's page: actions %v: %s", r.actions(), text(r.doc))
	}
	r = desk.post(consoleOfficerPath(e.users[bossAdmin].ID)+"/reset-mfa", nil)
	mustStatus(t, r, http.StatusForbidden)
	if !strings.Contains(text(r.doc), msgConsoleHigher) {
		t.Fatalf("reset-mfa of an admin by the helpdesk: %s", text(r.doc))
	}
	if tt, err := e.st.TOTPByUser(t.Context(), e.users[bossAdmin].ID); err != nil || !tt.Confirmed {
		t.Fatal("the admin's authenticator app was removed")
	}
	evs := e.eventsOf(store.EventConsoleForbidden)
	if len(evs) != 1 || !strings.Contains(string(evs[0].Detail), string(store.ReasonHigherRole)) || !strings.Contains(string(evs[0].Detail), bossAdmin) {
		t.Fatalf("audited as %+v", evs)
	}
	// An equal role is fair game: the other helpdesk.
	mustStatus(t, desk.post(consoleOfficerPath(e.users[helpdesk2].ID)+"/sign-out", nil), http.StatusSeeOther)

	// One's own second factor, and one's own account.
	for _, own := range []struct{ who, action, msg string }{
		{helpdesk, "reset-mfa", msgConsoleOwnMFA},
		{bossAdmin, "reset-mfa", msgConsoleOwnMFA},
		{bossAdmin, "disable", msgConsoleOwnDisable},
	} {
		b, _ := e.signIn(own.who, PathAdmin)
		page := b.get(consoleOfficerPath(e.users[own.who].ID))
		if slices.Contains(page.actions(), own.action) {
			t.Errorf("%s is offered %s on their own account", own.who, own.action)
		}
		r := b.post(consoleOfficerPath(e.users[own.who].ID)+"/"+own.action, nil)
		mustStatus(t, r, http.StatusForbidden)
		if !strings.Contains(text(r.doc), own.msg) {
			t.Errorf("%s %s on themselves: %s", own.who, own.action, text(r.doc))
		}
	}
	if u := e.user(e.users[bossAdmin].ID); u.State != store.UserActive {
		t.Fatal("the admin disabled themselves")
	}
}

// TestConsoleStepUp: a change needs a proof less than 10 minutes old; an
// older one goes to the confirm-it-is-you page first, which comes back to
// the console page, and nothing changes on the way.
func TestConsoleStepUp(t *testing.T) {
	t.Parallel()
	e := newConsoleEnv(t)
	b, _ := e.signIn(helpdesk, PathAdmin)
	id := e.users[plainStaff].ID
	e.lockedState(e.users[plainStaff])
	e.clock.Advance(11 * time.Minute)
	r := b.get(consoleOfficerPath(id))
	if !strings.Contains(text(r.doc), "confirm it is you") {
		t.Errorf("the page does not say a change needs a confirmation: %s", text(r.doc))
	}
	r = b.submitAction(r, "unlock", 0, nil)
	mustRedirect(t, r, PathReauth)
	if until, _, _ := e.h.admin().AccountLock(t.Context(), e.users[plainStaff]); until.IsZero() {
		t.Fatal("the unlock went through without a confirmation")
	}
	r = b.get(PathReauth)
	if !strings.Contains(r.notice(), "admin console") {
		t.Errorf("the confirmation page says %q", r.notice())
	}
	// A wrong code stays there.
	mustStatus(t, b.submit(r, map[string]string{"code": "000000"}), http.StatusUnprocessableEntity)
	r = b.submit(b.get(PathReauth), map[string]string{"code": e.code(helpdesk)})
	mustRedirect(t, r, consoleOfficerPath(id))
	r = b.follow(r)
	if !strings.Contains(r.notice(), "For the next 10 minutes") {
		t.Errorf("back on the console: notice %q", r.notice())
	}
	mustRedirect(t, b.submitAction(r, "unlock", 0, nil), consoleOfficerPath(id))
	if until, _, _ := e.h.admin().AccountLock(t.Context(), e.users[plainStaff]); !until.IsZero() {
		t.Fatal("the unlock after the confirmation did not happen")
	}
	// The account page's own confirmation still goes to the account page.
	e.clock.Advance(11 * time.Minute)
	r = b.post(PathAccountSignOutOthers, nil)
	mustRedirect(t, r, PathReauth)
	mustRedirect(t, b.submit(b.get(PathReauth), map[string]string{"code": e.code(helpdesk)}), PathAccount)
}

// TestConsoleCrossOrigin: a console form posted from another site is
// refused and changes nothing.
func TestConsoleCrossOrigin(t *testing.T) {
	t.Parallel()
	e := newConsoleEnv(t)
	b, _ := e.signIn(bossAdmin, PathAdmin)
	b.header.Set("Origin", "https://evil.example")
	b.header.Set("Sec-Fetch-Site", "cross-site")
	r := b.post(consoleOfficerPath(e.users[plainStaff].ID)+"/disable", nil)
	mustStatus(t, r, http.StatusForbidden)
	if u := e.user(e.users[plainStaff].ID); u.State != store.UserActive {
		t.Fatal("a cross-site form disabled an account")
	}
}

// TestConsoleOfficers: search by any word of the name or the start of the
// address, filter by state (locked and invitation expired included), and
// page through.
func TestConsoleOfficers(t *testing.T) {
	t.Parallel()
	e := newConsoleEnv(t)
	ctx := t.Context()
	for i := range 120 {
		name := fmt.Sprintf("Officer %03d Smith", i)
		if i%10 == 0 {
			name = fmt.Sprintf("Ängela %03d Martín", i)
		}
		u := &store.User{ID: fmt.Sprintf("u-officer%03d", i), Username: fmt.Sprintf("officer%03d@agency.example", i), Name: name,
			State: store.UserActive, PasswordHash: e.users[plainStaff].PasswordHash, CreatedAt: e.clock.Now()}
		u.Email = u.Username
		if err := e.st.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		switch i {
		case 7:
			u.State, u.PasswordInitial, u.InviteExpiresAt = store.UserInvited, true, e.clock.Now().Add(-time.Hour)
		case 8:
			u.State, u.PasswordInitial, u.InviteExpiresAt = store.UserInvited, true, e.clock.Now().Add(time.Hour)
		case 9:
			u.State = store.UserDisabled
		}
		if err := e.st.UpdateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		if i == 11 {
			e.lockedState(u)
		}
		if i == 12 { // its second factor is locked (mfa.guessing), not its password
			if err := e.st.Lock(ctx, keyFactor+u.ID, e.clock.Now().Add(time.Hour), 1); err != nil {
				t.Fatal(err)
			}
		}
	}
	b, _ := e.signIn(helpdesk, PathAdminOfficers)
	list := func(query string) ([]string, *resp) {
		t.Helper()
		r := b.get(PathAdminOfficers + "?" + query)
		mustStatus(t, r, http.StatusOK)
		var got []string
		for _, row := range findAll(r.doc, func(n *html.Node) bool { return n.Data == "tr" && attr(n, "data-officer") != "" }) {
			got = append(got, attr(row, "data-officer"))
		}
		return got, r
	}
	got, r := list("")
	if len(got) != officersShown || got[0] != approver {
		t.Fatalf("first page: %d rows from %v", len(got), got[:3])
	}
	next := find(r.doc, func(n *html.Node) bool { return n.Data == "a" && text(n) == "Next page" })
	if next == nil {
		t.Fatal("no next page")
	}
	seen := map[string]bool{}
	total := 0
	for page := attr(next, "href"); ; {
		for _, g := range got {
			if seen[g] {
				t.Fatalf("%s on two pages", g)
			}
			seen[g] = true
			total++
		}
		if page == "" {
			break
		}
		q, _ := url.Parse(page)
		got, r = list(q.RawQuery)
		page = ""
		if n := find(r.doc, func(n *html.Node) bool { return n.Data == "a" && text(n) == "Next page" }); n != nil {
			page = attr(n, "href")
		}
	}
	if total != 125 {
		t.Fatalf("paged through %d officers, want 125", total)
	}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"q=martin", []string{"officer000@agency.example", "officer010@agency.example", "officer020@agency.example", "officer030@agency.example", "officer040@agency.example", "officer050@agency.example", "officer060@agency.example", "officer070@agency.example", "officer080@agency.example", "officer090@agency.example", "officer100@agency.example", "officer110@agency.example"}},
		{"q=ÄNGELA+060", []string{"officer060@agency.example"}},
		{"q=officer11", []string{"officer110@agency.example", "officer111@agency.example", "officer112@agency.example", "officer113@agency.example", "officer114@agency.example", "officer115@agency.example", "officer116@agency.example", "officer117@agency.example", "officer118@agency.example", "officer119@agency.example"}},
		{"q=desk2%40agency", []string{helpdesk2}},
		{"q=smith&state=disabled", []string{"officer009@agency.example"}},
		{"state=expired", []string{"officer007@agency.example"}},
		{"state=invited", []string{"officer007@agency.example", "officer008@agency.example"}},
		{"state=locked", []string{"officer011@agency.example", "officer012@agency.example"}},
		{"state=locked&q=martin", nil},
		{"q=nobody-here", nil},
	} {
		got, r := list(tc.query)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.query, got, tc.want)
		}
		if tc.query == "state=locked" {
			if s := text(find(r.doc, func(n *html.Node) bool { return n.Data == "tr" && attr(n, "data-officer") != "" })); !strings.Contains(s, "Locked until") {
				t.Errorf("a locked row says %q", s)
			}
		}
	}
	r = b.get(PathAdminOfficers + "?state=sleeping")
	mustStatus(t, r, http.StatusBadRequest)
	if r.errorAt(t, "state") == "" {
		t.Fatal("an unknown state is not marked at its field")
	}

	// An officer's page: methods, documents, last sign-in.
	r = b.get(consoleOfficerPath(e.users[plainStaff].ID))
	mustStatus(t, r, http.StatusOK)
	if r.page() != "officer" {
		t.Fatalf("data-page %q", r.page())
	}
	for _, want := range []string{"Authenticator app: set up", "Recovery codes left: 0", "privacy", "2026-01", "Never"} {
		if !strings.Contains(text(r.doc), want) {
			t.Errorf("the officer page lacks %q: %s", want, text(r.doc))
		}
	}
	mustStatus(t, b.get(consoleOfficerPath("no-such-officer")), http.StatusNotFound)
}

// TestConsoleInvite: one officer; a CSV pasted and uploaded, previewed with
// each row's problem and nothing sent, then sent with a summary.
// A row of a CSV that fails for a reason of our own (here the database
// refuses that one insert, at run time) is said on its row and in the
// summary, nothing of it is stored, and the rows before and after it are
// invited.
func TestConsoleCSVRowError(t *testing.T) {
	t.Parallel()
	e := newConsoleEnv(t)
	if _, err := e.st.DB().ExecContext(t.Context(), `CREATE TRIGGER boom BEFORE INSERT ON users
		WHEN NEW.username = 'boom@agency.example' BEGIN SELECT json('not json'); END`); err != nil {
		t.Fatal(err)
	}
	b, _ := e.signIn(bossAdmin, PathAdminInvite)
	csv := "first@agency.example,First\nboom@agency.example,Boom\nlast@agency.example,Last"
	r := b.submitAction(b.get(PathAdminInvite), "preview", 0, map[string]string{"csv": csv})
	mustStatus(t, r, http.StatusOK)
	r = b.submitAction(r, "invite-csv", 0, nil)
	mustStatus(t, r, http.StatusOK)
	if n := r.notice(); !strings.Contains(n, "2 of 3 officers invited") || !strings.Contains(n, "1 could not be sent") {
		t.Fatalf("summary %q", n)
	}
	results := map[string]string{}
	for _, row := range findAll(r.doc, func(n *html.Node) bool { return n.Data == "tr" && attr(n, "data-row") != "" }) {
		results[attr(row, "data-row")] = text(row)
	}
	if !strings.Contains(results["2"], "Not sent: something went wrong") || !strings.Contains(results["1"], "Invited") || !strings.Contains(results["3"], "Invited") {
		t.Fatalf("rows %q", results)
	}
	for who, made := range map[string]bool{"first@agency.example": true, "boom@agency.example": false, "last@agency.example": true} {
		if _, err := e.st.UserByUsername(t.Context(), who); (err == nil) != made {
			t.Errorf("%s: account made %v, want %v", who, err == nil, made)
		}
	}
	if len(e.mails("boom@agency.example")) != 0 {
		t.Error("an email went to the row that failed")
	}
}

func TestConsoleInvite(t *testing.T) {
	t.Parallel()
	e := newConsoleEnv(t, func(c *config.Config) { c.Requests.Organisations = []string{"Headquarters", "Regional office"} })
	b, _ := e.signIn(bossAdmin, PathAdminInvite)
	r := b.get(PathAdminInvite)
	if got := r.actions(); !slices.Equal(got, []string{"invite", "preview"}) {
		t.Fatalf("actions %v", got)
	}
	r = b.submitAction(r, "invite", 0, map[string]string{"email": "kim@litemail.agency.example", "name": "Kim"})
	mustStatus(t, r, http.StatusUnprocessableEntity)
	if got := r.errorAt(t, "email"); !strings.Contains(got, "refused mailbox") {
		t.Fatalf("a LiteMail invitation: %q", got)
	}
	r = b.submitAction(r, "invite", 0, map[string]string{"email": "kim@agency.example", "name": ""})
	if got := r.errorAt(t, "name"); got == "" {
		t.Fatal("an invitation without a name is not marked at the name")
	}
	r = b.submitAction(r, "invite", 0, map[string]string{"email": "Kim@Agency.example", "name": "Kim Lee"})
	mustRedirect(t, r, PathAdminInvite)
	if !strings.Contains(b.follow(r).notice(), "Invited kim@agency.example") {
		t.Fatal("no notice after the invitation")
	}
	if m := e.lastMail("kim@agency.example"); !strings.Contains(m.Subject, "finish setting up") {
		t.Fatalf("onboarding email %q", m.Subject)
	}
	if ev := e.eventsOf(store.EventInvite); len(ev) != 1 || !strings.Contains(string(ev[0].Detail), e.users[bossAdmin].ID) {
		t.Fatalf("audited as %+v", ev)
	}

	csv := strings.Join([]string{
		"email,name,organisation",
		"ann.one@agency.example, Ann One, Headquarters",
		"bob.two@agency.example,Bob Two",
		"not-an-address,Nobody",
		"cat@litemail.agency.example,Cat Three",
		"dan@gmail.example,Dan Four",
		"ANN.ONE@agency.example,Ann Again",
		"eve.five@agency.example",
		"kim@agency.example,Kim Lee",
		"fay.six@agency.example,Fay Six,Evil corp",
		"gil.seven@agency.example,Gil,Headquarters,extra",
		`"hal.eight@agency.example","Eight, Hal"`,
	}, "\n")
	mails := len(e.smtp.Messages())
	users, _ := e.st.ListUsers(t.Context(), "", "")
	r = b.submitAction(b.get(PathAdminInvite), "preview", 0, map[string]string{"csv": csv})
	mustStatus(t, r, http.StatusOK)
	problems := map[string]string{}
	for _, row := range findAll(r.doc, func(n *html.Node) bool { return n.Data == "tr" && attr(n, "data-row") != "" }) {
		problems[attr(row, "data-row")] = text(find(row, func(n *html.Node) bool { return strings.Contains(attr(n, "class"), "row-status") }))
	}
	want := map[string]string{
		"2": "Ready", "3": "Ready", "4": "not an email address", "5": "refused mailbox", "6": "not in an allowed domain",
		"7": "the same address as line 2", "8": "no name", "9": "already invited", "10": "not one of",
		"11": "more than three columns", "12": "Ready",
	}
	for line, w := range want {
		if !strings.Contains(problems[line], w) {
			t.Errorf("line %s: %q, want %q", line, problems[line], w)
		}
	}
	if len(problems) != len(want) {
		t.Errorf("rows %v", problems)
	}
	if len(e.smtp.Messages()) != mails {
		t.Fatal("the preview sent email")
	}
	if now, _ := e.st.ListUsers(t.Context(), "", ""); len(now) != len(users) {
		t.Fatal("the preview made accounts")
	}
	if btn := text(find(r.doc, func(n *html.Node) bool { return n.Data == "form" && attr(n, "data-action") == "invite-csv" })); btn != "Send 3 invitations" {
		t.Fatalf("send button %q", btn)
	}
	// Meanwhile someone invites Bob: the send checks each row again.
	if _, err := e.h.admin().Invite(t.Context(), store.ActorCLI, "bob.two@agency.example", Names{Full: "Bob Two"}); err != nil {
		t.Fatal(err)
	}
	r = b.submitAction(r, "invite-csv", 0, nil)
	mustStatus(t, r, http.StatusOK)
	if !strings.Contains(r.notice(), "2 of 11 officers invited") {
		t.Fatalf("summary notice %q", r.notice())
	}
	for _, who := range []string{"ann.one@agency.example", "hal.eight@agency.example"} {
		u, err := e.st.UserByUsername(t.Context(), who)
		if err != nil || u.State != store.UserInvited {
			t.Errorf("%s: %+v, %v", who, u, err)
		}
	}
	if u, _ := e.st.UserByUsername(t.Context(), "hal.eight@agency.example"); u.Name != "Eight, Hal" {
		t.Errorf("quoted name %q", u.Name)
	}
	if len(e.mails("bob.two@agency.example")) != 1 {
		t.Error("bob was invited twice")
	}

	// An uploaded file, and the limits.
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("csv_file", "list.csv")
	fw.Write([]byte("\ufeffivy.nine@agency.example,Ivy Nine\n"))
	mw.WriteField("csv", "")
	mw.Close()
	req, _ := http.NewRequest("POST", e.srv.URL+PathAdminCSVPreview, &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	res, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page := new(bytes.Buffer)
	page.ReadFrom(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(page.String(), "ivy.nine@agency.example") || !strings.Contains(page.String(), "Send 1 invitation") {
		t.Fatalf("an uploaded CSV: %d\n%s", res.StatusCode, page.String())
	}
	r = b.submitAction(b.get(PathAdminInvite), "preview", 0, map[string]string{"csv": `"unterminated,Quote`})
	mustStatus(t, r, http.StatusUnprocessableEntity)
	if !strings.Contains(r.errorAt(t, "csv"), "not valid CSV") {
		t.Fatalf("bad CSV: %q", r.errorAt(t, "csv"))
	}
	long := strings.Repeat("someone@agency.example,Someone\n", maxCSVRows+1)
	r = b.submitAction(b.get(PathAdminInvite), "preview", 0, map[string]string{"csv": long})
	if !strings.Contains(r.errorAt(t, "csv"), "more than 100 rows") {
		t.Fatalf("a long CSV: %q", r.errorAt(t, "csv"))
	}
}

// TestConsoleAudit: filters by officer, event and day, newest first, pages,
// and says whether the chain is intact — and where it is not.
func TestConsoleAudit(t *testing.T) {
	t.Parallel()
	e := newConsoleEnv(t)
	a := e.h.admin()
	for range 60 {
		if _, err := a.Unlock(t.Context(), store.ActorCLI, plainStaff); err != nil {
			t.Fatal(err)
		}
	}
	b, r := e.signIn(bossAdmin, PathAdminAudit)
	mustStatus(t, r, http.StatusOK)
	events := func(r *resp) []string {
		var out []string
		for _, row := range findAll(r.doc, func(n *html.Node) bool { return n.Data == "tr" && attr(n, "data-event") != "" }) {
			out = append(out, attr(row, "data-event"))
		}
		return out
	}
	if got := events(r); len(got) != auditShown || got[0] != string(store.EventSigninSuccess) {
		t.Fatalf("newest first: %d rows starting %v", len(got), got[:2])
	}
	r = b.get(PathAdminAudit + "?officer=" + url.QueryEscape(plainStaff) + "&event=admin.")
	got := events(r)
	if len(got) != auditShown || got[0] != string(store.EventUserUnlock) {
		t.Fatalf("filtered: %d rows %v", len(got), got[:1])
	}
	if !strings.Contains(text(r.doc), "cli") {
		t.Error("the events do not say who made them")
	}
	older := find(r.doc, func(n *html.Node) bool { return n.Data == "a" && text(n) == "Older events" })
	if older == nil {
		t.Fatal("no older events")
	}
	if got := events(b.get(attr(older, "href"))); len(got) != 10 {
		t.Fatalf("the second page has %d events, want 10", len(got))
	}
	day := e.clock.Now().Format(dayLayout)
	if got := events(b.get(PathAdminAudit + "?since=" + day + "&until=" + day + "&event=signin.success")); len(got) != 1 {
		t.Fatalf("today's sign-ins: %v", got)
	}
	tomorrow := e.clock.Now().Add(24 * time.Hour).Format(dayLayout)
	if got := events(b.get(PathAdminAudit + "?since=" + tomorrow)); len(got) != 0 {
		t.Fatalf("tomorrow: %v", got)
	}
	r = b.get(PathAdminAudit + "?since=yesterday&event=DROP+TABLE")
	mustStatus(t, r, http.StatusBadRequest)
	if r.errorAt(t, "since") == "" || r.errorAt(t, "event") == "" {
		t.Fatal("bad filters are not marked at their fields")
	}

	r = b.get(PathAdminAudit + "?verify=1")
	chain := find(r.doc, func(n *html.Node) bool { return attr(n, "data-chain") != "" })
	if chain == nil || attr(chain, "data-chain") != "intact" {
		t.Fatalf("the chain: %s", text(chain))
	}
	if _, err := e.st.DB().ExecContext(t.Context(), `UPDATE audit SET detail = '{"by":"someone else"}' WHERE id = 5`); err != nil {
		t.Fatal(err)
	}
	r = b.get(PathAdminAudit + "?verify=1")
	chain = find(r.doc, func(n *html.Node) bool { return attr(n, "data-chain") != "" })
	if chain == nil || attr(chain, "data-chain") != "broken" || !strings.Contains(text(chain), "#5") {
		t.Fatalf("a tampered chain: %s", text(chain))
	}
}

// TestConsoleClients: the relying parties as the configuration has them.
func TestConsoleClients(t *testing.T) {
	t.Parallel()
	e := newConsoleEnv(t, func(c *config.Config) {
		c.Clients = []config.Client{{ID: "docs-portal-staging", Name: "Docs portal (staging)", RedirectURIs: []string{"http://localhost:9001/callback"},
			GrantTypes: []string{"authorization_code", "refresh_token"}, Scopes: []string{"openid", "offline_access"}, Line: 12}}
	})
	_, r := e.signIn(bossAdmin, PathAdminClients)
	mustStatus(t, r, http.StatusOK)
	card := find(r.doc, func(n *html.Node) bool { return attr(n, "data-client") == "docs-portal-staging" })
	for _, want := range []string{"Docs portal (staging)", "http://localhost:9001/callback", "authorization_code, refresh_token", "line 12"} {
		if !strings.Contains(text(card), want) {
			t.Errorf("the client card lacks %q: %s", want, text(card))
		}
	}
	if len(r.actions()) != 0 {
		t.Errorf("the clients page has actions %v: it is read-only", r.actions())
	}
}

// TestConsoleOfficerWithOnlyAPhone: the helpdesk's answer to "I lost my
// phone" when the phone was the officer's only second factor and no
// recovery code is left — the officer's page lists the phone and offers
// Reset the second factor, which removes it.
func TestConsoleOfficerWithOnlyAPhone(t *testing.T) {
	t.Parallel()
	e := newConsoleEnv(t)
	u := e.freshTarget("phone.only@agency.example")
	ctx := t.Context()
	if err := e.st.DeleteTOTP(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.st.DeleteRecoveryCodes(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.AddApprovalDevice(ctx, &store.ApprovalDevice{ID: "the-only-phone", UserID: u.ID, Name: "Pixel of Pat",
		PublicKey: pub, CreatedAt: e.clock.Now(), LastUsedAt: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	b, _ := e.signIn(helpdesk, PathAdmin)
	page := b.get(consoleOfficerPath(u.ID))
	mustStatus(t, page, http.StatusOK)
	if !slices.Contains(page.actions(), "reset-mfa") {
		t.Fatalf("an officer whose only factor is a phone: actions %v", page.actions())
	}
	if !strings.Contains(text(page.doc), "Pixel of Pat") {
		t.Errorf("the phone is not listed: %s", text(page.doc))
	}
	if r := b.post(consoleOfficerPath(u.ID)+"/reset-mfa", nil); r.status != http.StatusSeeOther {
		t.Fatalf("reset-mfa: %d %s", r.status, r.errorSummary())
	}
	if devs, err := e.st.ApprovalDevices(ctx, u.ID); err != nil || len(devs) != 0 {
		t.Fatalf("after reset-mfa: %d phones, %v", len(devs), err)
	}
}

// TestConsoleShowsTheDailyCap: an officer whose second factors reached the
// day's cap is refused them until the day is over, with no lock of its
// own; the console shows them locked until then, and Unlock ends it.
func TestConsoleShowsTheDailyCap(t *testing.T) {
	t.Parallel()
	e := newConsoleEnv(t)
	u := e.freshTarget("capped@agency.example")
	ctx := t.Context()
	start := e.clock.Now().UTC()
	for range e.h.settings().cfg.Throttle.SecondFactorDailyCap {
		if _, err := e.st.RecordFailure(ctx, keyFactorPerDay+u.ID, start, 24*time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	until, _, err := e.h.admin().AccountLock(ctx, u)
	if err != nil || !until.Equal(start.Add(24*time.Hour)) {
		t.Fatalf("AccountLock at the daily cap: %v, %v (want %v)", until, err, start.Add(24*time.Hour))
	}
	b, _ := e.signIn(helpdesk, PathAdmin)
	page := b.get(consoleOfficerPath(u.ID))
	mustStatus(t, page, http.StatusOK)
	if !strings.Contains(text(page.doc), "Locked until") || !slices.Contains(page.actions(), "unlock") {
		t.Fatalf("at the daily cap the page says %q, actions %v", text(page.doc), page.actions())
	}
	if r := b.post(consoleOfficerPath(u.ID)+"/unlock", nil); r.status != http.StatusSeeOther {
		t.Fatalf("unlock: %d %s", r.status, r.errorSummary())
	}
	if until, _, err := e.h.admin().AccountLock(ctx, u); err != nil || !until.IsZero() {
		t.Fatalf("after Unlock: locked until %v, %v", until, err)
	}
}
