package flows

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/lanyard-idp/lanyard/flows/approval"
	"github.com/lanyard-idp/lanyard/flows/passkey"
	"github.com/lanyard-idp/lanyard/provider/store"
)

// The account page's phones paired with the approval app: pair another
// (the pairing pages of approve.go under /account/approve), rename, remove
// — with the same recent proof, audit events and notice emails as every
// other sign-in method, and never the last second factor where the journey
// requires one.

const (
	PathAccountDeviceRename = "/account/approve/rename"
	PathAccountDeviceRemove = "/account/approve/remove"
)

const (
	msgNoSuchDevice  = "That phone is no longer paired with your account. The page below is up to date."
	msgDeviceNameBad = "Give the phone a name of at most 64 letters, digits, spaces or punctuation."
	msgEnterDevice   = "Enter a name for the phone, like “Work phone”."
	msgDeviceRenamed = "The phone was renamed."
)

type deviceView struct {
	ID, Name, Added, LastUsed string
	Push                      bool
}

// deviceViews lists the user's phones for the account page.
func (h *Handler) deviceViews(ctx context.Context, userID string) ([]deviceView, error) {
	ds, err := h.store.ApprovalDevices(ctx, userID)
	if err != nil {
		return nil, err
	}
	var out []deviceView
	for _, d := range ds {
		out = append(out, deviceView{ID: d.ID, Name: d.Name, Added: displayTime(d.CreatedAt),
			LastUsed: displayTime(d.LastUsedAt), Push: d.Push.Endpoint != ""})
	}
	return out, nil
}

// postAccountApproveFinish stores the phone the account's pairing page
// paired. An officer who had no second factor also gets recovery codes,
// shown once by the journey's own step.
func (h *Handler) postAccountApproveFinish(w http.ResponseWriter, r *http.Request, f *flow) error {
	req, err := h.approvedPairing(w, r, f, useAccount)
	if err != nil || req == nil {
		return err
	}
	ctx, s, u := r.Context(), f.s, f.user
	dev := pairedDevice(req, h.now().UTC())
	before := s.j
	hashes, err := h.firstRecoveryCodes(ctx, f)
	if err != nil {
		return err
	}
	s.j.Approval = nil
	s.j.AccountNotice = fmt.Sprintf("Your phone “%s” is paired. Sign-ins can now be approved on it.", dev.Name)
	err = h.commit(ctx, s, func(ctx context.Context) error {
		if err := h.store.UseApproval(ctx, req.ID); err != nil {
			return err
		}
		return h.storeFactor(r, f, newFactor{device: dev}, hashes,
			event{Name: evDeviceAdd, UserID: u.ID, Username: u.Username, Detail: map[string]any{"name": dev.Name}})(ctx)
	})
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		s.j = before
		return redirect(w, r, PathAccount)
	}
	if err != nil {
		return err
	}
	h.notify(r, u, noticeDeviceAdded, "Phone: "+dev.Name)
	if hashes != nil {
		return redirect(w, r, PathNext)
	}
	return redirect(w, r, PathAccount)
}

// deviceOf finds one of the user's phones by the id a form posted.
func (h *Handler) deviceOf(ctx context.Context, userID, id string) (*store.ApprovalDevice, error) {
	if !approval.ValidID(id) {
		return nil, nil
	}
	d, err := h.store.ApprovalDeviceByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && d.UserID != userID {
		return nil, nil
	}
	return d, err
}

func (h *Handler) postAccountDeviceRename(w http.ResponseWriter, r *http.Request, f *flow) error {
	ctx, s, u := r.Context(), f.s, f.user
	id := r.PostForm.Get("id")
	d, err := h.deviceOf(ctx, u.ID, id)
	if err != nil {
		return err
	}
	if d == nil {
		return h.showAccount(w, r, f, http.StatusNotFound, func(p *accountPage) { p.fail("", msgNoSuchDevice) })
	}
	name, ok := passkey.CleanName(r.PostForm.Get("name"))
	if !ok || name == "" {
		msg := msgDeviceNameBad
		if ok {
			msg = msgEnterDevice
		}
		return h.showAccount(w, r, f, http.StatusUnprocessableEntity, func(p *accountPage) { p.fail("device-name-"+id, msg) })
	}
	err = h.commit(ctx, s, func(ctx context.Context) error {
		if err := h.store.RenameApprovalDevice(ctx, u.ID, d.ID, name); err != nil {
			return err
		}
		return h.audit(ctx, r, s, event{Name: evDeviceRename, UserID: u.ID, Username: u.Username,
			Detail: map[string]any{"name": name, "was": d.Name}})
	})
	if errors.Is(err, store.ErrNotFound) {
		return h.showAccount(w, r, f, http.StatusNotFound, func(p *accountPage) { p.fail("", msgNoSuchDevice) })
	}
	if err != nil {
		return err
	}
	return h.back(w, r, s, msgDeviceRenamed)
}

func (h *Handler) postAccountDeviceRemove(w http.ResponseWriter, r *http.Request, f *flow) error {
	ctx, s, u := r.Context(), f.s, f.user
	d, err := h.deviceOf(ctx, u.ID, r.PostForm.Get("id"))
	if err != nil {
		return err
	}
	if d == nil {
		return h.showAccount(w, r, f, http.StatusNotFound, func(p *accountPage) { p.fail("", msgNoSuchDevice) })
	}
	s.j.AccountNotice = fmt.Sprintf("Your phone “%s” was removed. It can no longer approve sign-ins.", d.Name)
	err = h.removeFactor(ctx, r, f, func(ctx context.Context) error {
		return h.store.DeleteApprovalDevice(ctx, u.ID, d.ID)
	}, event{Name: evDeviceRemove, UserID: u.ID, Username: u.Username, Detail: map[string]any{"name": d.Name}})
	switch {
	case errors.Is(err, errLastMethod):
		return h.showAccount(w, r, f, http.StatusConflict, func(p *accountPage) { p.fail("", msgLastMethod) })
	case errors.Is(err, store.ErrNotFound):
		return h.showAccount(w, r, f, http.StatusNotFound, func(p *accountPage) { p.fail("", msgNoSuchDevice) })
	case err != nil:
		return err
	}
	h.notify(r, u, noticeDeviceRemoved, "Phone: "+d.Name)
	return redirect(w, r, PathAccount)
}
