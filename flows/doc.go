// Package flows is the officer journey: the sign-in pages (username, then
// password), the step engine that decides which interstitial steps are still
// pending (enrol MFA, change the initial password, accept the Privacy policy,
// then the Terms of use), one handler per step, the SSO session cookie,
// throttling, invitations and the account page.
//
// flows never imports fosite: it implements provider/authn.Journey and hands
// the browser back to the resume URL the provider gave it. HTML lives in
// templates/, SQL in provider/store.
package flows
