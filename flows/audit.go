package flows

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/lanyard-idp/lanyard/provider/store"
)

// The audit events the journey writes, by their names in flows. The
// vocabulary itself (names, reasons) is provider/store's events.go.
const (
	evSigninPassword  = store.EventSigninPassword
	evSigninPasskey   = store.EventSigninPasskey
	evSigninSuccess   = store.EventSigninSuccess
	evSigninFailure   = store.EventSigninFailure
	evLock            = store.EventLock
	evFactorGuessing  = store.EventFactorGuessing
	evMFAEnrol        = store.EventMFAEnrol
	evMFAChallenge    = store.EventMFAChallenge
	evRecoveryUse     = store.EventRecoveryUse
	evPasswordChange  = store.EventPasswordChange
	evPolicyAccept    = store.EventPolicyAccept
	evLogout          = store.EventLogout
	evWebAuthnClone   = store.EventWebAuthnClone
	evAccountReauth   = store.EventAccountReauth
	evPasskeyAdd      = store.EventPasskeyAdd
	evPasskeyRename   = store.EventPasskeyRename
	evPasskeyRemove   = store.EventPasskeyRemove
	evTOTPAdd         = store.EventTOTPAdd
	evTOTPRemove      = store.EventTOTPRemove
	evRecoveryRenew   = store.EventRecoveryRenew
	evSignOutSessions = store.EventSignOutSessions
	evApprovalOpen    = store.EventApprovalPairingOpen
	evApprovalRequest = store.EventApprovalRequest
	evApprovalApprove = store.EventApprovalApprove
	evApprovalDeny    = store.EventApprovalDeny
	evApprovalReport  = store.EventApprovalReport
	evApprovalGone    = store.EventApprovalPushGone
	evDeviceAdd       = store.EventDeviceAdd
	evDeviceRename    = store.EventDeviceRename
	evDeviceRemove    = store.EventDeviceRemove
)

// event is one audit line before the request's context is added. Detail
// holds small facts (a reason, a document version), never a password, code,
// secret or session id.
type event struct {
	Name     store.Event
	UserID   string
	Username string
	Detail   map[string]any
}

// audit appends an event with the request's client id, address and user
// agent, in ctx's transaction when there is one (so it is stored with the
// change it describes, or not at all).
func (h *Handler) audit(ctx context.Context, r *http.Request, s *session, e event) error {
	ev := &store.AuditEvent{
		At:         h.now().UTC(),
		Event:      e.Name,
		UserID:     e.UserID,
		Username:   truncate(e.Username, 254),
		ClientAddr: clientAddr(r),
		UserAgent:  truncate(r.UserAgent(), 256),
	}
	if s != nil {
		ev.ClientID = s.j.ClientID
	}
	if len(e.Detail) > 0 {
		d, err := json.Marshal(e.Detail)
		if err != nil {
			return fmt.Errorf("audit %s: %w", e.Name, err)
		}
		ev.Detail = d
	}
	if err := h.store.AppendAudit(ctx, ev); err != nil {
		return fmt.Errorf("audit %s: %w", e.Name, err)
	}
	return nil
}

// auditLog is audit for events that go with no other write (a failure, a
// lock): losing one is logged rather than failing the request.
func (h *Handler) auditLog(ctx context.Context, r *http.Request, s *session, e event) {
	if err := h.audit(ctx, r, s, e); err != nil {
		h.log.Error("cannot write audit event", "event", e.Name, "err", err)
	}
}
