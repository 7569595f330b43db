package flows

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/provider/store"
)

// TestRequestToInvitation is the guide's step 1 from the requester's side
// and the approver's: the form, the email with the link, the click that
// confirms it, the approver's email and the console's approval, and the
// onboarding email.
func TestRequestToInvitation(t *testing.T) {
	t.Parallel()
	e := newConsoleEnv(t)
	const kim = "kim.new@agency.example"

	// The sign-in page offers it.
	r := e.browser().open(PathSignIn)
	if find(r.doc, func(n *html.Node) bool { return n.Data == "a" && attr(n, "href") == PathRequest }) == nil {
		t.Fatalf("the sign-in page has no link to %s", PathRequest)
	}
	b := e.browser()
	r = b.get(PathRequest)
	mustStatus(t, r, http.StatusOK)
	mustStep(t, r, StepRequestAccess)
	checkPage(t, r)
	for _, f := range []string{"email", "name", "organisation", "reason"} {
		if find(r.form(), func(n *html.Node) bool { return attr(n, "name") == f }) == nil {
			t.Errorf("the request form has no field %q", f)
		}
	}
	r = b.submit(r, map[string]string{"email": " Kim.New@Agency.example ", "name": "Kim New", "organisation": "Regional office", "reason": "I edit the docs portal.\nMy manager is Sam."})
	mustRedirect(t, r, PathRequestSent)
	r = b.follow(r)
	checkPage(t, r)
	if !strings.Contains(text(r.doc), "Check your email") {
		t.Fatalf("after the form: %s", text(r.doc))
	}
	reqs := e.requests()
	if len(reqs) != 1 || reqs[0].Email != kim || reqs[0].Status != store.RequestUnverified || reqs[0].Organisation != "Regional office" ||
		reqs[0].Reason != "I edit the docs portal.\nMy manager is Sam." {
		t.Fatalf("stored %+v", reqs)
	}
	if len(e.eventsOf(store.EventRequestSubmit)) != 1 {
		t.Fatal("the request is not audited")
	}

	// The link shows a page that changes nothing; its button confirms.
	m := e.lastMail(kim)
	if !strings.Contains(m.Subject, "Confirm your request") || !strings.Contains(m.HTML, "Confirm my request") {
		t.Fatalf("verification email %q:\n%s", m.Subject, m.Text)
	}
	link := e.verifyLink(kim)
	if !strings.HasPrefix(link, e.srv.URL+PathRequestVerify+"?token=") {
		t.Fatalf("the link %q is not under the issuer", link)
	}
	r = b.get(link)
	mustStatus(t, r, http.StatusOK)
	mustStep(t, r, StepRequestVerify)
	checkPage(t, r)
	if e.requests()[0].Status != store.RequestUnverified {
		t.Fatal("opening the link changed the request (a GET must not)")
	}
	r = b.submit(r, nil)
	mustStatus(t, r, http.StatusOK)
	if !strings.Contains(text(r.doc), "waits for an approver") {
		t.Fatalf("after confirming: %s", text(r.doc))
	}
	if got := e.requests()[0]; got.Status != store.RequestPending || !got.ExpiresAt.Equal(e.clock.Now().Add(14*24*time.Hour)) {
		t.Fatalf("after confirming: %+v", got)
	}
	// The link is used up.
	mustStatus(t, b.get(link), http.StatusGone)

	// The approver is emailed a link to the request in the console.
	am := e.lastMail(approver)
	id := e.requests()[0].ID
	if !strings.Contains(am.Text, e.srv.URL+"/admin/requests/"+id) || !strings.Contains(am.Text, "My manager is Sam.") {
		t.Fatalf("the approver's email:\n%s", am.Text)
	}
	if len(e.mails(bossAdmin)) != 0 || len(e.mails(helpdesk)) != 0 {
		t.Fatal("only approvers are emailed")
	}

	// The approver follows it, signs in, and approves.
	ab, r := e.signIn(approver, "/admin/requests/"+id)
	if r.page() != "requests" || !strings.Contains(text(r.doc), "Kim New") {
		t.Fatalf("the link led to %s (page %q): %s", r.url, r.page(), text(r.doc))
	}
	if got := r.actions(); !slices.Equal(got, []string{"approve", "deny"}) {
		t.Fatalf("actions %v", got)
	}
	r = ab.submitAction(r, "approve", 0, nil)
	mustRedirect(t, r, PathAdminRequests)
	r = ab.follow(r)
	if !strings.Contains(r.notice(), "Approved: "+kim) {
		t.Fatalf("notice %q", r.notice())
	}
	u, err := e.st.UserByUsername(t.Context(), kim)
	if err != nil || u.State != store.UserInvited || u.Name != "Kim New" {
		t.Fatalf("the invitation: %+v, %v", u, err)
	}
	if got := e.requests()[0]; got.Status != store.RequestApproved || got.DecidedBy != e.users[approver].ID {
		t.Fatalf("the request after approval: %+v", got)
	}
	onb := e.lastMail(kim)
	if onb.Subject != "Your Lanyard account: finish setting up" || !strings.Contains(onb.Text, "Initial password:") {
		t.Fatalf("the onboarding email: %s\n%s", onb.Subject, onb.Text)
	}
	ev := e.eventsOf(store.EventRequestApprove)
	if len(ev) != 1 || !strings.Contains(string(ev[0].Detail), e.users[approver].ID) || ev[0].ClientAddr == "" {
		t.Fatalf("approval audited as %+v", ev)
	}
	if inv := e.eventsOf(store.EventInvite); len(inv) != 1 || !strings.Contains(string(inv[0].Detail), e.users[approver].ID) {
		t.Fatalf("invitation audited as %+v", inv)
	}
	// Nothing more to decide: a second approval is refused on the page.
	r = ab.post("/admin/requests/"+id+"/approve", nil)
	mustStatus(t, r, http.StatusConflict)
	if !strings.Contains(r.errorSummary(), "no longer waiting") {
		t.Fatalf("second approval: %s", r.errorSummary())
	}
	if n := len(e.eventsOf(store.EventInvite)); n != 1 {
		t.Fatalf("%d invitations", n)
	}
}

// TestRequestNoEnumeration: a request for an address that has an account
// gets the same answer as one that does not — status, redirect, page —
// after the same work; only the email differs ("you already have an
// account").
func TestRequestNoEnumeration(t *testing.T) {
	t.Parallel()
	e := newConsoleEnv(t)
	e.h.reqLimits = requestLimits{perAddress: 1000, addressWindow: time.Hour, perMailbox: 1000, mailboxWindow: 24 * time.Hour}
	e.seedUser("invited.one@agency.example", aliceFirst, true)
	disabled := e.seedReady("gone.one@agency.example", alicePw)
	disabled.State = store.UserDisabled
	if err := e.st.UpdateUser(t.Context(), disabled); err != nil {
		t.Fatal(err)
	}
	answer := func(email string) (int, string, string) {
		b := e.browser()
		r := b.post(PathRequest, requestForm(email, "Someone", "Access to the portal."))
		page := b.follow(r)
		return r.status, r.location, text(page.doc)
	}
	st0, loc0, page0 := answer("brand.new@agency.example")
	for _, existing := range []string{plainStaff, "invited.one@agency.example", "gone.one@agency.example"} {
		st, loc, page := answer(existing)
		if st != st0 || loc != loc0 || page != page0 {
			t.Errorf("%s: %d %q %q; a new address gets %d %q %q", existing, st, loc, page, st0, loc0, page0)
		}
		m := e.lastMail(existing)
		if !strings.Contains(m.Subject, "You already have") || !strings.Contains(m.Text, e.srv.URL+"/signin") || strings.Contains(m.Text, "verify") {
			t.Errorf("%s was emailed %q:\n%s", existing, m.Subject, m.Text)
		}
	}
	if n := len(e.requests()); n != 1 {
		t.Fatalf("%d requests stored; only the new address has one", n)
	}
	if n := len(e.eventsOf(store.EventRequestExisting)); n != 3 {
		t.Fatalf("%d request.existing_account events, want 3", n)
	}

	// The same time, within the noise: medians of interleaved requests.
	const rounds = 15
	var fresh, known []time.Duration
	for i := range rounds {
		for _, who := range []string{fmt.Sprintf("timing%02d@agency.example", i), plainStaff} {
			start := time.Now()
			e.browser().post(PathRequest, requestForm(who, "Someone", "Timing."))
			d := time.Since(start)
			if who == plainStaff {
				known = append(known, d)
			} else {
				fresh = append(fresh, d)
			}
		}
	}
	median := func(ds []time.Duration) time.Duration {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[len(ds)/2]
	}
	a, k := median(fresh), median(known)
	diff := a - k
	if diff < 0 {
		diff = -diff
	}
	t.Logf("median answer: new address %s, existing account %s", a, k)
	if diff > 25*time.Millisecond && diff > max(a, k)/2 {
		t.Errorf("an existing account answers in %s, a new address in %s: the difference tells them apart", k, a)
	}
}

// TestRequestRefusedInPlace: a bad form is answered on the same page,
// the problem at its field, nothing stored; refusals of the address
// policy are audited.
func TestRequestRefusedInPlace(t *testing.T) {
	t.Parallel()
	e := newConsoleEnv(t, func(c *config.Config) { c.Requests.Organisations = []string{"Headquarters", "Regional office"} })
	e.h.reqLimits.perAddress = 100
	for _, tc := range []struct {
		name, field, msg string
		form             url.Values
		audited          store.Reason
	}{
		{"no address", "email", msgRequestEmail, requestForm("", "Kim", "x"), ""},
		{"not an address", "email", msgRequestEmail, requestForm("kim at agency", "Kim", "x"), ""},
		{"LiteMail", "email", msgRequestMailbox, requestForm("kim@litemail.agency.example", "Kim", "x"), store.ReasonRefusedMailbox},
		{"a Cyrillic letter", "email", msgRequestLookAlike, requestForm("\u0430lice@agency.example", "Alice", "x"), store.ReasonAddressPolicy},
		{"another domain", "email", "accounts can only be requested for addresses at agency.example or partner.example", requestForm("kim@gmail.example", "Kim", "x"), store.ReasonDomainNotAllowed},
		{"no name", "name", msgRequestName, requestForm("kim@agency.example", " ", "x"), ""},
		{"name on two lines", "name", msgRequestNameLong, requestForm("kim@agency.example", "Kim\r\nBcc: x@evil.example", "x"), ""},
		{"no reason", "reason", msgRequestReason, requestForm("kim@agency.example", "Kim", "  "), ""},
		{"long reason", "reason", msgRequestReasonLong, requestForm("kim@agency.example", "Kim", strings.Repeat("a", 1001)), ""},
		{"organisation not in the list", "organisation", msgRequestOrgChoose,
			url.Values{"email": {"kim@agency.example"}, "name": {"Kim"}, "organisation": {"Evil corp"}, "reason": {"x"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.eventsOf(store.EventRequestRefused))
			r := e.browser().post(PathRequest, tc.form)
			mustStatus(t, r, http.StatusUnprocessableEntity)
			checkPage(t, r)
			mustStep(t, r, StepRequestAccess)
			got := ""
			got = r.errorAt(t, tc.field)
			if !strings.Contains(got, tc.msg) {
				t.Errorf("%s: %q, want %q", tc.field, got, tc.msg)
			}
			wantEv := before
			if tc.audited != "" {
				wantEv++
			}
			if evs := e.eventsOf(store.EventRequestRefused); len(evs) != wantEv || (tc.audited != "" && !strings.Contains(string(evs[len(evs)-1].Detail), string(tc.audited))) {
				t.Errorf("request.refused events: %d, want %d (%v)", len(evs), wantEv, evs)
			}
		})
	}
	if n := len(e.requests()); n != 0 {
		t.Fatalf("%d requests stored from refused forms", n)
	}
	if n := len(e.smtp.Messages()); n != 0 {
		t.Fatalf("%d emails sent for refused forms", n)
	}
	// The organisation is offered as a list, and one of it is accepted.
	r := e.browser().get(PathRequest)
	if sel := find(r.form(), func(n *html.Node) bool { return n.Data == "select" && attr(n, "name") == "organisation" }); sel == nil {
		t.Fatal("with organisations configured the form has no list")
	}
	r = e.browser().post(PathRequest, url.Values{"email": {"kim@agency.example"}, "name": {"Kim"}, "organisation": {"Regional office"}, "reason": {"x"}})
	mustRedirect(t, r, PathRequestSent)
}

// TestRequestLimits: per client address and per mailbox, each refusal
// audited once, and the mailbox's limit the same whether or not it has an
// account.
func TestRequestLimits(t *testing.T) {
	t.Parallel()
	e := newConsoleEnv(t)
	e.h.reqLimits = requestLimits{perAddress: 8, addressWindow: time.Hour, perMailbox: 2, mailboxWindow: 24 * time.Hour}
	for _, who := range []string{"flood.target@agency.example", plainStaff} {
		for i := 1; i <= 4; i++ {
			r := e.request(who, "Someone")
			want := http.StatusSeeOther
			if i > 2 {
				want = http.StatusTooManyRequests
			}
			mustStatus(t, r, want)
			if want == http.StatusTooManyRequests && r.fieldError(t, "email") != msgRequestMailboxMany {
				t.Fatalf("%s, request %d: %q", who, i, r.fieldError(t, "email"))
			}
		}
		if n := len(e.mails(who)); n != 2 {
			t.Fatalf("%s got %d emails, want 2 (the limit)", who, n)
		}
	}
	// Eight forms from this address so far: the next ones are refused
	// before anything is read.
	r := e.request("someone.else@agency.example", "Someone")
	mustStatus(t, r, http.StatusTooManyRequests)
	if !strings.Contains(r.errorSummary(), msgRequestTooMany) {
		t.Fatalf("address limit: %s", r.errorSummary())
	}
	mustStatus(t, e.request("someone.else@agency.example", "Someone"), http.StatusTooManyRequests)
	reasons := map[string]int{}
	for _, ev := range e.eventsOf(store.EventRequestRefused) {
		for _, r := range []store.Reason{store.ReasonAddressLimit, store.ReasonMailboxLimit} {
			if strings.Contains(string(ev.Detail), string(r)) {
				reasons[string(r)]++
			}
		}
	}
	if reasons[string(store.ReasonMailboxLimit)] != 2 || reasons[string(store.ReasonAddressLimit)] != 1 {
		t.Fatalf("refusals audited %v: want each limit once per key", reasons)
	}
	// An hour later the address may ask again.
	e.clock.Advance(time.Hour + time.Minute)
	mustStatus(t, e.request("someone.else@agency.example", "Someone"), http.StatusSeeOther)
}

// TestRequestOnePerMailbox: a second request while one is open stores
// nothing new: an unverified one gets a fresh link (the old one dies), a
// pending one a "still waiting" email; and of 20 racing submissions for
// one mailbox one request is stored.
func TestRequestOnePerMailbox(t *testing.T) {
	t.Parallel()
	e := newConsoleEnv(t)
	e.h.reqLimits = requestLimits{perAddress: 1000, addressWindow: time.Hour, perMailbox: 1000, mailboxWindow: 24 * time.Hour}
	const who = "twice@agency.example"
	mustRedirect(t, e.request(who, "Twice"), PathRequestSent)
	first := e.verifyLink(who)
	mustRedirect(t, e.request(who, "Twice"), PathRequestSent)
	second := e.verifyLink(who)
	if first == second {
		t.Fatal("the repeated request did not get a fresh link")
	}
	mustStatus(t, e.browser().get(first), http.StatusGone)
	if n := len(e.requests()); n != 1 {
		t.Fatalf("%d requests", n)
	}
	b := e.browser()
	mustStatus(t, b.submit(b.get(second), nil), http.StatusOK)
	mustRedirect(t, e.request(who, "Twice"), PathRequestSent)
	if m := e.lastMail(who); !strings.Contains(m.Subject, "waiting for approval") {
		t.Fatalf("a request while one waits: %q", m.Subject)
	}
	if n := len(e.requests()); n != 1 {
		t.Fatalf("%d requests", n)
	}

	// Racing submissions, then racing confirmations of one link.
	const racer = "racer@agency.example"
	var wg sync.WaitGroup
	status := make([]int, 20)
	for i := range status {
		wg.Go(func() { status[i] = e.request(racer, "Racer").status })
	}
	wg.Wait()
	for i, s := range status {
		if s != http.StatusSeeOther {
			t.Fatalf("submission %d: %d", i, s)
		}
	}
	n := 0
	for _, r := range e.requests() {
		if r.Email == racer {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d requests stored for one mailbox by 20 racing submissions", n)
	}
	// One link, confirmed by 20 racing clicks.
	const clicker = "clicker@agency.example"
	mustRedirect(t, e.request(clicker, "Clicker"), PathRequestSent)
	link := e.verifyLink(clicker)
	token, _ := url.ParseQuery(strings.SplitN(link, "?", 2)[1])
	ok := make([]int, 20)
	for i := range ok {
		wg.Go(func() { ok[i] = e.browser().post(PathRequestVerify, url.Values{"token": token["token"]}).status })
	}
	wg.Wait()
	wins := 0
	for _, s := range ok {
		if s == http.StatusOK {
			wins++
		} else if s != http.StatusGone {
			t.Fatalf("a racing confirmation answered %d", s)
		}
	}
	verified := 0
	for _, ev := range e.eventsOf(store.EventRequestVerify) {
		if ev.Username == clicker {
			verified++
		}
	}
	if wins != 1 || verified != 1 {
		t.Fatalf("%d confirmations succeeded and %d were audited, want 1 and 1", wins, verified)
	}
}

// TestRequestDecisions: 20 racing approvals invite once; a denial needs a
// reason and emails it; a decided request cannot be decided again.
func TestRequestDecisions(t *testing.T) {
	t.Parallel()
	e := newConsoleEnv(t)
	a := e.h.admin()
	pending := func(who string) string {
		t.Helper()
		mustRedirect(t, e.request(who, "Pat "+strings.Split(who, "@")[0]), PathRequestSent)
		b := e.browser()
		mustStatus(t, b.submit(b.get(e.verifyLink(who)), nil), http.StatusOK)
		for _, r := range e.requests() {
			if r.Email == who {
				return r.ID
			}
		}
		t.Fatalf("no request of %s", who)
		return ""
	}
	id := pending("race.approve@agency.example")
	errs := make([]error, 20)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() { _, errs[i] = a.ApproveRequest(t.Context(), store.Actor(e.users[approver].ID), id) })
	}
	wg.Wait()
	if w := winners(t, errs, ErrRequestNotPending); w != 1 {
		t.Fatalf("%d approvals won", w)
	}
	if n := len(e.eventsOf(store.EventInvite)); n != 1 {
		t.Fatalf("%d invitations from 20 racing approvals", n)
	}
	onboarding := 0
	for _, m := range e.mails("race.approve@agency.example") {
		if strings.Contains(m.Subject, "finish setting up") {
			onboarding++
		}
	}
	if onboarding != 1 {
		t.Fatalf("%d onboarding emails", onboarding)
	}

	// A denial in the console: the reason is required, at its field.
	id = pending("denied.one@agency.example")
	b, r := e.signIn(approver, PathAdminRequests)
	r = b.submitAction(r, "deny", 0, map[string]string{"reason": "  "})
	mustStatus(t, r, http.StatusUnprocessableEntity)
	if got := r.errorAt(t, "reason-"+id); !strings.Contains(got, "reason") {
		t.Fatalf("deny without a reason: %q", got)
	}
	byID := func(id string) store.AccountRequest {
		r, err := e.st.AccountRequestByID(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		return *r
	}
	if byID(id).Status != store.RequestPending {
		t.Fatal("a refused denial changed the request")
	}
	r = b.submitAction(r, "deny", 0, map[string]string{"reason": "Contractors get accounts through their agency.\nAsk Sam."})
	mustRedirect(t, r, PathAdminRequests)
	if got := byID(id); got.Status != store.RequestDenied || got.DenyReason != "Contractors get accounts through their agency.\nAsk Sam." {
		t.Fatalf("after the denial: %+v", got)
	}
	m := e.lastMail("denied.one@agency.example")
	if !strings.Contains(m.Subject, "not approved") || !strings.Contains(m.Text, "Contractors get accounts through their agency.") {
		t.Fatalf("the denial email: %s\n%s", m.Subject, m.Text)
	}
	if _, err := e.st.UserByUsername(t.Context(), "denied.one@agency.example"); err == nil {
		t.Fatal("a denied request made an account")
	}
	if _, err := a.ApproveRequest(t.Context(), store.ActorCLI, id); !errors.Is(err, ErrRequestNotPending) {
		t.Fatalf("approving a denied request: %v", err)
	}
	if ev := e.eventsOf(store.EventRequestDeny); len(ev) != 1 || !strings.Contains(string(ev[0].Detail), e.users[approver].ID) {
		t.Fatalf("denial audited as %+v", ev)
	}
}

// TestRequestExpiry: an unverified request expires after a day (its link
// says so), a pending one after requests.unapproved_for (it can no longer
// be approved); both are audited, and the mailbox may ask again.
func TestRequestExpiry(t *testing.T) {
	t.Parallel()
	e := newConsoleEnv(t, func(c *config.Config) { c.Requests.UnapprovedFor = config.Duration(72 * time.Hour) })
	a := e.h.admin()
	mustRedirect(t, e.request("slow.clicker@agency.example", "Slow"), PathRequestSent)
	link := e.verifyLink("slow.clicker@agency.example")
	mustRedirect(t, e.request("slow.approver@agency.example", "Waiting"), PathRequestSent)
	b := e.browser()
	mustStatus(t, b.submit(b.get(e.verifyLink("slow.approver@agency.example")), nil), http.StatusOK)

	e.clock.Advance(24*time.Hour + time.Second)
	r := e.browser().get(link)
	mustStatus(t, r, http.StatusGone)
	if !strings.Contains(text(r.doc), "no longer works") {
		t.Fatalf("an expired link: %s", text(r.doc))
	}
	// Before housekeeping has run, the list already says expired.
	views, err := a.Requests(t.Context(), store.RequestUnverified, "", 0)
	if err != nil || len(views) != 0 {
		t.Fatalf("unverified after a day: %+v, %v", views, err)
	}
	if n, err := a.ExpireRequests(t.Context()); err != nil || n != 1 {
		t.Fatalf("ExpireRequests: %d, %v", n, err)
	}
	// A new request of the same mailbox is a new one.
	mustRedirect(t, e.request("slow.clicker@agency.example", "Slow"), PathRequestSent)

	e.clock.Advance(48 * time.Hour)
	var waiting string
	for _, r := range e.requests() {
		if r.Email == "slow.approver@agency.example" {
			waiting = r.ID
		}
	}
	if _, err := a.ApproveRequest(t.Context(), store.ActorCLI, waiting); !errors.Is(err, ErrRequestNotPending) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("approving an expired request: %v", err)
	}
	// The waiting request, and the second one of the slow clicker (a day
	// old and still unverified).
	if n, err := a.ExpireRequests(t.Context()); err != nil || n != 2 {
		t.Fatalf("ExpireRequests: %d, %v", n, err)
	}
	was := map[string][]string{}
	for _, ev := range e.eventsOf(store.EventRequestExpire) {
		var d struct{ Was string }
		if err := json.Unmarshal(ev.Detail, &d); err != nil {
			t.Fatal(err)
		}
		was[ev.Username] = append(was[ev.Username], d.Was)
	}
	if !slices.Equal(was["slow.clicker@agency.example"], []string{"unverified", "unverified"}) || !slices.Equal(was["slow.approver@agency.example"], []string{"pending"}) {
		t.Fatalf("expiries audited as %v", was)
	}
	if _, err := e.st.UserByUsername(t.Context(), "slow.approver@agency.example"); err == nil {
		t.Fatal("an expired request made an account")
	}
}

// TestRequestAutomaticApproval: a domain approved automatically gets the
// onboarding email as soon as the mailbox is proved; no approver is asked.
func TestRequestAutomaticApproval(t *testing.T) {
	t.Parallel()
	e := newConsoleEnv(t)
	const who = "auto@partner.example"
	mustRedirect(t, e.request(who, "Auto Matic"), PathRequestSent)
	b := e.browser()
	r := b.submit(b.get(e.verifyLink(who)), nil)
	mustStatus(t, r, http.StatusOK)
	if !strings.Contains(text(r.doc), "Your account is ready") {
		t.Fatalf("after confirming: %s", text(r.doc))
	}
	if m := e.lastMail(who); !strings.Contains(m.Subject, "finish setting up") {
		t.Fatalf("the last email: %q", m.Subject)
	}
	got := e.requests()[0]
	if got.Status != store.RequestApproved || got.DecidedBy != string(store.ActorAutomatic) {
		t.Fatalf("the request: %+v", got)
	}
	if len(e.mails(approver)) != 0 {
		t.Fatal("an approver was asked about an automatic domain")
	}
}

// TestRequestLimitPerIPv6Network: an IPv6 client is counted by its
// throttle.ipv6_prefix network, as everywhere else: ten forms from ten
// addresses of one /64 meet one limit.
func TestRequestLimitPerIPv6Network(t *testing.T) {
	t.Parallel()
	e := newConsoleEnv(t)
	e.h.reqLimits = requestLimits{perAddress: 3, addressWindow: time.Hour, perMailbox: 1000, mailboxWindow: 24 * time.Hour}
	inner := e.srv.Config.Handler
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.RemoteAddr = r.Header.Get("X-Test-Remote")
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	accepted := 0
	for i := range 10 {
		b := e.browser()
		b.header.Set("X-Test-Remote", fmt.Sprintf("[2001:db8:1:2::%x]:4000", i+1))
		r := b.post(front.URL+PathRequest, requestForm(fmt.Sprintf("v6.%d@agency.example", i), "Someone", "I maintain the docs portal."))
		switch r.status {
		case http.StatusSeeOther:
			accepted++
		case http.StatusTooManyRequests:
		default:
			t.Fatalf("form %d: %d", i, r.status)
		}
	}
	if accepted != 3 {
		t.Fatalf("%d forms accepted from one /64, want 3", accepted)
	}
}
