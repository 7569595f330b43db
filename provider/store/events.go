package store

// The vocabulary of the audit trail: every event name Lanyard writes, the
// reasons a failure records, and who made an admin change. Each is written
// here once and used by name everywhere else — by the journey (flows), the
// provider, the admin commands and the metrics, which count these constants
// and never parse an event's name. A new event is a new constant here.

// Event names an audit event (AuditEvent.Event).
type Event string

// The officer's journey: sign-in, second factors, steps, sign-out.
const (
	EventSigninPassword Event = "signin.password"
	EventSigninPasskey  Event = "signin.passkey"
	EventSigninSuccess  Event = "signin.success"
	EventSigninFailure  Event = "signin.failure" // Detail "reason": a Reason
	// The failures of one client address beyond the few audited one by one
	// in a minute (flows/auditflood.go). Detail "count", "reasons" (count by
	// Reason), "accounts" (how many), "from", "until", "summary".
	EventSigninFailureAggregated Event = "signin.failure.aggregated"
	EventLock                    Event = "lock" // Detail "key": "acct", "mfa", "dev" or "addr"; "seconds"
	// Second-factor failures from browsers the account does not know
	// reached a lock or the daily cap. Detail "after_password": whether they
	// followed a correct password (the officer is then emailed); "until".
	EventFactorGuessing Event = "mfa.guessing"
	EventMFAEnrol       Event = "mfa.enrol"
	EventMFAChallenge   Event = "mfa.challenge"
	EventRecoveryUse    Event = "mfa.recovery_code.use"
	EventPasswordChange Event = "password.change"
	EventPolicyAccept   Event = "policy.accept" // Detail "document", "version"
	EventLogout         Event = "logout"
	EventWebAuthnClone  Event = "webauthn.clone_warning"
	// A signed-in session proved more for a relying party that asked for
	// it (acr_values): Detail "acr" (what it reached), "client_id".
	EventSigninStepUp Event = "signin.step_up"
	// The consent page: Detail "client_id", "scopes", "claims".
	EventConsentGrant   Event = "consent.grant"
	EventConsentDecline Event = "consent.decline"
)

// Self-service recovery. Forgot your password: a link asked for (Detail
// "sent": what the address was emailed, a ResetMail), refused (Detail
// "reason": a limit), opened and bound to a browser, refused when opened
// (Detail "reason": why the link no longer works), voided (Detail
// "reason"), and the reset done (Detail "sessions_ended"). Lost phone:
// signed in with a recovery code and asked to replace the factor (Detail
// "sessions_ended": the other sessions signed out). Lost onboarding email:
// a fresh one asked for (Detail "outcome": an InvitationOutcome).
const (
	EventResetRequest    Event = "password_reset.request"
	EventResetRefused    Event = "password_reset.refused"
	EventResetOpen       Event = "password_reset.open"
	EventResetLinkFailed Event = "password_reset.link_refused"
	EventResetVoid       Event = "password_reset.void"
	EventResetDone       Event = "password_reset.done"
	// A recovery email (a reset link, "ask for an invitation", "your
	// account is set up") could not be sent. Detail "mail": which.
	EventRecoveryMailFailed Event = "recovery.mail_failed"
	EventFactorLost         Event = "mfa.lost"
	EventInviteAsk          Event = "invite.ask"
	EventInviteAskFailed    Event = "invite.ask.refused" // Detail "reason": a limit
)

// ResetMail is what a "Forgot your password?" request emailed: the "sent"
// in the detail of password_reset.request.
type ResetMail string

const (
	ResetMailLink       ResetMail = "link"       // an active account: the link
	ResetMailInvitation ResetMail = "invitation" // an invited account: ask for a new invitation
	ResetMailNothing    ResetMail = "nothing"    // no account, or a disabled one
)

// InvitationOutcome is what asking for a fresh onboarding email did: the
// "outcome" in the detail of invite.ask.
type InvitationOutcome string

const (
	InvitationResent  InvitationOutcome = "resent"  // sent at once (requests.approval automatic)
	InvitationWaiting InvitationOutcome = "waiting" // an approver decides (a request of kind invitation)
	InvitationActive  InvitationOutcome = "active"  // the account is set up already: told so by email
	InvitationNone    InvitationOutcome = "none"    // no invitation for the address: nothing sent
)

// The account page.
const (
	EventAccountReauth   Event = "account.reauth"
	EventPasskeyAdd      Event = "account.passkey.add"
	EventPasskeyRename   Event = "account.passkey.rename"
	EventPasskeyRemove   Event = "account.passkey.remove"
	EventTOTPAdd         Event = "account.totp.add"
	EventTOTPRemove      Event = "account.totp.remove"
	EventRecoveryRenew   Event = "account.recovery_codes.renew"
	EventSignOutSessions Event = "account.sessions.sign_out"
	EventConsentWithdraw Event = "account.consent.withdraw" // Detail "client_id"
	EventNamesChange     Event = "account.names.change"     // Detail "fields": the names changed
)

// The approval app: pairing a phone, requests sent to it and its answers.
const (
	EventApprovalPairingOpen Event = "approval.pairing.open" // a phone opened a pairing link
	EventApprovalRequest     Event = "approval.request"      // Detail "kind": signin | reauth; "devices", "pushed"
	EventApprovalApprove     Event = "approval.approve"      // Detail "kind", "device"
	EventApprovalDeny        Event = "approval.deny"         // Detail "kind", "reason": a Reason
	EventApprovalReport      Event = "approval.report"       // the officer reported a denied request: signed out everywhere
	EventApprovalPushGone    Event = "approval.push.gone"    // the push service no longer knows a device's subscription
	EventDeviceAdd           Event = "account.approval_device.add"
	EventDeviceRename        Event = "account.approval_device.rename"
	EventDeviceRemove        Event = "account.approval_device.remove"
)

// The provider.
const (
	EventTokenIssue Event = "token.issue" // Detail "grant": one of config.GrantTypes
	// A client introspected another client's token without being a resource
	// server (config introspection): answered inactive. Detail "owner": the
	// token's client.
	EventIntrospectRefused Event = "token.introspect.refused"
	// A used code or a rotated refresh token was presented again (or a
	// concurrent redemption lost the race for a code): what it had issued
	// is revoked. ClientID and UserID are the grant's; Detail "grant"
	// (authorization_code or refresh_token), "request" (the token family's
	// request id), "by" (the client that presented it).
	EventTokenReuse Event = "token.reuse"
	// A client revoked a token at /revoke (RFC 7009). ClientID is the
	// client; when the token was one of its live ones, UserID is its
	// subject and Detail "grant" (refresh_token or access_token, the kind
	// presented) and "request" say which family ended.
	EventTokenRevoke Event = "token.revoke"
	// Each attempt to deliver a back-channel logout token. Detail "result":
	// a LogoutResult; "reason": why it was queued, a Reason.
	EventLogoutBackchannel Event = "logout.backchannel"
)

// LogoutResult is the outcome of one back-channel logout delivery: the
// "result" in the detail of logout.backchannel.
type LogoutResult string

const (
	LogoutDelivered LogoutResult = "delivered"
	LogoutFailed    LogoutResult = "failed" // retried later
	LogoutGaveUp    LogoutResult = "gave_up"
)

// LogoutResults lists every LogoutResult.
var LogoutResults = []LogoutResult{LogoutDelivered, LogoutFailed, LogoutGaveUp}

// Invitations and the other admin changes; each detail carries "by", an Actor.
const (
	EventInvite            Event = "invite"
	EventInviteResend      Event = "invite.resend"
	EventInviteRevoke      Event = "invite.revoke"
	EventInviteMailFailed  Event = "invite.mail_failed"
	EventUserDisable       Event = "admin.user.disable"
	EventUserEnable        Event = "admin.user.enable"
	EventUserUnlock        Event = "admin.user.unlock"
	EventUserResetMFA      Event = "admin.user.reset_mfa"
	EventUserSignOut       Event = "admin.user.sign_out"
	EventUserResetPassword Event = "admin.user.reset_password"
	EventResetMailFailed   Event = "admin.user.reset_password.mail_failed"
	EventKeysRotate        Event = "admin.keys.rotate"
	EventBackup            Event = "admin.backup"
	EventRestore           Event = "admin.restore"
	EventConfigReload      Event = "admin.config.reload"
	EventAuditPrune        Event = "admin.audit.prune" // Detail "through_id", "hash": the last event removed
)

// Account requests (/request) and their decisions: Username is the
// requested address, Detail "request" the request's id; a decision's detail
// carries "by".
const (
	EventRequestSubmit     Event = "request.submit"
	EventRequestRepeat     Event = "request.repeat"           // the mailbox has an open request: nothing new stored
	EventRequestExisting   Event = "request.existing_account" // the address has an account: told so by email
	EventRequestRefused    Event = "request.refused"          // Detail "reason": a Reason
	EventRequestVerify     Event = "request.verify"
	EventRequestApprove    Event = "request.approve"
	EventRequestDeny       Event = "request.deny" // Detail "reason": the approver's words
	EventRequestExpire     Event = "request.expire"
	EventRequestMailFailed Event = "request.mail_failed" // Detail "mail": which message
)

// The admin console: a request a role may not make, refused (403).
// Detail "action", "reason" (a Reason) and "by".
const (
	EventConsoleForbidden Event = "admin.forbidden"
)

// The audit trail itself.
const (
	// The chain became keyed: the first event a Lanyard with the audit key
	// wrote after events of an older, unkeyed Lanyard. Detail
	// "unkeyed_through": the last unkeyed event's id.
	EventAuditKeyed Event = "audit.chain.keyed"
)

// Reason is why a sign-in, a code or a passkey ceremony failed (the
// "reason" in the detail of signin.failure), or why a relying party's
// logout was queued (LogoutDelivery.Reason, the "reason" of
// logout.backchannel).
type Reason string

const (
	ReasonUnknownUser          Reason = "unknown user"
	ReasonWrongPassword        Reason = "wrong password"
	ReasonWrongCurrentPassword Reason = "wrong current password"
	ReasonLocked               Reason = "locked"
	ReasonDisabled             Reason = "disabled"
	ReasonInvitationExpired    Reason = "invitation expired"
	ReasonWrongCode            Reason = "wrong code"
	ReasonWrongEnrolmentCode   Reason = "wrong enrolment code"
	ReasonMalformedCode        Reason = "malformed code"
	ReasonCodeUsed             Reason = "code already used"
	ReasonNoSession            Reason = "no session"

	// Passkey ceremonies. The four prefixes are followed by ": " and what
	// go-webauthn said.
	ReasonOversized             Reason = "oversized request"
	ReasonUnreadableRequest     Reason = "unreadable request"
	ReasonMalformedRequest      Reason = "malformed request"
	ReasonNoChallenge           Reason = "no challenge (replayed or never started)"
	ReasonOtherCeremony         Reason = "challenge of another ceremony"
	ReasonOtherUser             Reason = "challenge of another user"
	ReasonChallengeExpired      Reason = "challenge expired"
	ReasonUnreadableChallenge   Reason = "unreadable challenge"
	ReasonChallengeUsed         Reason = "challenge already used"
	ReasonCredentialExists      Reason = "credential already registered"
	ReasonBadPasskeyName        Reason = "bad passkey name"
	ReasonNoUserVerification    Reason = "user verification missing"
	ReasonUnknownUserHandle     Reason = "unknown user handle"
	ReasonMalformedRegistration Reason = "malformed registration"
	ReasonRegistrationRefused   Reason = "registration refused"
	ReasonMalformedAssertion    Reason = "malformed assertion"
	ReasonAssertionRefused      Reason = "assertion refused"
	ReasonNotUsersCredential    Reason = "credential not the user's"
	ReasonSignCountRegression   Reason = "sign count regression (clone warning)"

	// Account requests.
	ReasonDomainNotAllowed Reason = "domain not allowed"
	ReasonRefusedMailbox   Reason = "refused mailbox"
	ReasonAddressPolicy    Reason = "address refused by the invitation policy"
	ReasonAddressLimit     Reason = "too many requests from the client address"
	ReasonMailboxLimit     Reason = "too many requests for the mailbox"

	// Self-service recovery.
	ReasonAccountLimit   Reason = "too many reset links for the account"
	ReasonLinkUnknown    Reason = "unknown link"
	ReasonLinkExpired    Reason = "link expired"
	ReasonLinkUsed       Reason = "link already used"
	ReasonLinkReplaced   Reason = "link replaced by a newer one"
	ReasonLinkElsewhere  Reason = "link opened in another browser"
	ReasonNoSecondFactor Reason = "no second factor"
	ReasonNotActive      Reason = "account not active"
	ReasonResetTimeout   Reason = "reset not finished in time"
	ReasonAskedAgain     Reason = "asked again within minutes"

	// The console.
	ReasonNotAdmin   Reason = "not an admin"
	ReasonNoFactor   Reason = "signed in without a second factor"
	ReasonRole       Reason = "the role lacks the action"
	ReasonHigherRole Reason = "the account has a higher role"
	ReasonOwnAccount Reason = "not on one's own account"

	// Why a logout was queued for the relying parties of a session.
	ReasonSessionEnded   Reason = "session_ended"   // sign-out, RP-initiated logout, a session ended on the account page
	ReasonUserRevoked    Reason = "user_revoked"    // every session and token of the user: disable, reset, sign out everywhere
	ReasonSessionExpired Reason = "session_expired" // removed by DeleteExpired

	// The approval app.
	ReasonWrongNumber       Reason = "wrong number"
	ReasonWrongNumbers      Reason = "three wrong numbers" // denied: approval.deny
	ReasonNotMe             Reason = "not me"              // denied on the phone: approval.deny
	ReasonApprovalSignature Reason = "approval signature refused"
	ReasonOtherDevice       Reason = "device not the user's"
	ReasonApprovalAnswered  Reason = "approval request already answered"
	ReasonApprovalExpired   Reason = "approval request expired"
)

// ResetLinkReasons are why an emailed reset link was refused
// (password_reset.link_refused). Beyond a few a minute, an address's
// refusals are counted in its signin.failure.aggregated with its failed
// sign-ins: these reasons there are not sign-ins.
var ResetLinkReasons = []Reason{ReasonLinkUnknown, ReasonLinkUsed, ReasonLinkReplaced, ReasonLinkElsewhere, ReasonLinkExpired, ReasonNotActive}

// Actor is who made an admin change: the "by" in its audit detail. Besides
// these, an admin acting in the web console is their user id, and the
// requester's own steps of an account request are by the requested
// address.
type Actor string

const (
	ActorCLI    Actor = "cli"    // a lanyard command on the server
	ActorSIGHUP Actor = "sighup" // a configuration reload
	// ActorAutomatic approves the verified requests of a domain whose
	// requests.approval is automatic.
	ActorAutomatic Actor = "automatic"
)
