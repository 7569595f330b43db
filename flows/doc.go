// Package flows is the officer journey: the sign-in pages (username, then
// password), the step engine that decides which interstitial steps are still
// pending (enrol MFA and save the recovery codes, change the initial
// password, accept each configured policy document — the Privacy policy,
// then the Terms of use, in the guide's order), one handler pair per step,
// the SSO session and its cookie, throttling of guesses, the audit lines of
// all of it, the account page, the admin service (invitations, account
// requests and every admin change to an account), the account request
// pages, self-service recovery and the admin console.
//
// How it fits together:
//
//   - engine.go: the step table — one row per step with its name (the
//     data-step marker), page, pending predicate, place in "Step N of M",
//     funnel label, template and handlers; a policy document's step is made
//     from one generic row, named by the document's id — and Pending, a pure
//     function from a State (what the session and the store say about the
//     user) to the ordered list of steps still to do. A table test walks
//     every combination; nothing else decides order. ConfigRule checks a
//     configuration's journey.steps and document ids against the table.
//   - flows.go: Options, New, SetConfig and Mount, which routes every step
//     from the table, and the router's guards: at (a journey step: a request
//     for any step but the browser's first pending one gets a 303 to that
//     one, or the passkey script its JSON "go here", and changes nothing),
//     atDocument and signedIn (the account pages). Handlers receive the
//     checked flow.
//   - next.go: the dispatcher (GET /signin/next). Each step, when done,
//     returns to it, never to "the next page". When nothing is pending it
//     marks the session authenticated and resumes the parked authorization
//     request. Browser, SignIn, SignOut and StepPending implement
//     provider/authn.Journey here.
//   - consent.go: the consent page, the last step when the parked
//     request asks for the officer's consent (prompt=consent, or a client
//     with consent: required not covered by what the officer allowed it);
//     the answer is recorded on the parked request, where the provider
//     reads it. A step-up for acr_values is the mfa-challenge step once
//     more (a passkey alone for urn:lanyard:acr:phr). Both belong to the
//     request, not the account (State.forRequest): while only they wait,
//     the browser is signed in for everything else.
//   - signin.go, mfa.go, steps.go: the step handlers. Every change a step
//     makes, the session's progress and its audit line are stored in one
//     transaction; the session id is rotated after the password and after
//     the second factor inside that transaction, so of racing requests on
//     one session only one can take effect. mfa.go also holds what the
//     journey and the account page share about factors (confirmTOTP,
//     storeFactor, proveCode); steps.go the password change (passwordChange).
//   - session.go: the cookie (gorilla/sessions on securecookie, carrying only
//     a random 256-bit id; keys sealed in the store so restarts and other
//     nodes log nobody out), the server-side session with the journey's
//     state in its Data and its named transitions (newSignIn, signInAgain,
//     factorVerified, confirmed); idle, absolute and journey timeouts, and
//     EndIdleSessions, which the collector calls so that idle sessions end
//     (and their relying parties are told) within minutes.
//   - throttle.go, device.go, audit.go, web.go: guess counting and locks
//     (which counters an attempt meets: the browser's own when its device
//     cookie says it has signed in to the account before, else the
//     account's for passwords or for second factors, and the address), the
//     device cookie, audit events (their names and reasons are the
//     vocabulary of provider/store's events.go), security headers,
//     cross-origin protection, body limits, and the one adapter that turns an
//     error into the error page (templates.ServeError).
//   - webauthn.go: the HTTP side of passkeys and security keys: enrolment in
//     the mfa-enrol step, the second factor, passwordless sign-in, adding one
//     on the account page; challenges live in the server-side session, single
//     use. The WebAuthn mechanics (go-webauthn) are in the passkey subpackage.
//   - approve.go, approve_phone.go, approve_push.go, approve_account.go:
//     the Lanyard approval app (the guide's step 3.5). The computer's side:
//     a browser waits for the phone at mfa-enrol and on the account page
//     (pairing: a one-time link, then the number), at mfa-challenge and on
//     the confirm page (a request pushed to the phone); it is bound to the
//     request by the id in its server-side session, and finishing is the
//     journey's own transition (storeFactor with the recovery codes, or
//     factorVerified). The phone's side: the installable app at /approve
//     and its JSON API, where every answer is signed by the phone's
//     device-bound key; wrong numbers are failed second factors in the one
//     throttle. Web Push with the deployment's sealed VAPID key. The
//     protocol itself (numbers, tokens, signatures, push encryption) is the
//     approval subpackage.
//   - account.go: the account page (methods, recovery codes, password,
//     sessions, security events); account_reauth.go the recent-proof check
//     before any change and the confirm-it-is-you page; account_factors.go
//     the changes to the sign-in methods and the password;
//     account_sessions.go signing out, and SignOutEverywhere;
//     account_names.go the officer's names; consent.go the permissions
//     given and their withdrawal; notify.go: the security-notice emails,
//     and the alerts about what someone else tried (a lock, second-factor
//     guessing). The security events listed are officerEvents only.
//   - admin.go, invite.go, officer.go, request.go: the admin service (Admin),
//     the one home of what an administrator does to accounts — invite,
//     resend, revoke, disable, enable, unlock, reset MFA, reset the password,
//     sign out everywhere, describe an officer — and to account requests —
//     approve, deny, expire — each with its actor in the audit event.
//     AddressPolicy is the one check an address passes before an invitation
//     or a request. The admin commands are thin wrappers around it; the
//     admin console calls it too.
//   - recovery_reset.go, recovery_lost.go, recovery_invite.go: self-service
//     recovery. Forgot your password: a single-use link, emailed, bound to
//     the browser that opens it, standing in for the password step only
//     (State.Resetting: the second factor, then reset-password); lost
//     phone: a recovery code on the challenge's lost page signs the others
//     out and makes mfa-enrol pending again (State.ReplacingFactor), then
//     remove-lost-factor; a lost or expired onboarding email: a fresh one,
//     at once or as a request for an approver. The public forms answer
//     after the same time whatever they find (evenly), their emails go out
//     in the background.
//   - request_page.go: the public account request pages (/request, the
//     "check your email" page, the confirmation link's page): no account
//     enumeration by wording or timing, limits per address and mailbox.
//   - console.go and console_*.go: the admin console (/admin). Its guard
//     (the router's, like the journey's) loads the admin's flow, roles and
//     the freshness of the second factor and refuses once; the pages and the
//     actions on an officer are tables with the roles that may use each.
//
// flows never imports fosite and never builds an OAuth response: it tells the
// provider, through authn.Browser, who is signed in and how, and hands the
// browser back to the resume URL the provider gave it. HTML lives in
// templates/ (one typed data struct per page, pages.go), SQL in
// provider/store, TOTP, passkeys, passwords, mail and the approval app's
// protocol in the subpackages otp, passkey, password, mail and approval.
package flows
