package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Consent: an officer's remembered decisions per relying party, and the
// decision taken on a parked authorization request (the consent page's
// answer, which the provider reads when the request resumes).

// Decisions on a parked authorization request (AuthRequest.Decision).
const (
	ConsentGranted  = "granted"
	ConsentDeclined = "declined"
)

// Consent is an officer's remembered decision to let a relying party have
// the scopes and the claims (named in the claims request parameter) it
// asked for.
type Consent struct {
	UserID    string
	ClientID  string
	Scopes    []string // sorted, no duplicates
	Claims    []string // sorted, no duplicates
	GrantedAt time.Time
}

// Covers reports whether the remembered decision includes every scope and
// claim of a new request: when the client asks for more, the officer is
// asked again.
func (c *Consent) Covers(scopes, claims []string) bool {
	if c == nil {
		return false
	}
	for _, s := range scopes {
		if !slices.Contains(c.Scopes, s) {
			return false
		}
	}
	for _, s := range claims {
		if !slices.Contains(c.Claims, s) {
			return false
		}
	}
	return true
}

// nameSet is a list of scope or claim names as stored: sorted, unique,
// space-separated. A name with a space or a control character cannot be
// one (OAuth scope tokens exclude them).
func nameSet(names []string) (string, error) {
	set := slices.Compact(slices.Sorted(slices.Values(names)))
	for _, n := range set {
		if n == "" || strings.ContainsFunc(n, func(r rune) bool { return r <= ' ' || r == 0x7f }) || len(n) > 256 {
			return "", invalid("consent: %q is not a scope or claim name", n)
		}
	}
	return strings.Join(set, " "), nil
}

// RememberConsent records that the officer allowed the client c.Scopes and
// c.Claims, added to what they allowed it before (each was shown on the
// consent page). A zero GrantedAt is set to now. ErrNotFound when the user
// does not exist.
func (s *Store) RememberConsent(ctx context.Context, c Consent) error {
	switch {
	case c.UserID == "":
		return invalid("consent without user id")
	case c.ClientID == "":
		return invalid("consent without client id")
	}
	if c.GrantedAt.IsZero() {
		c.GrantedAt = s.now()
	}
	err := s.InTx(ctx, func(ctx context.Context) error {
		old, err := s.ConsentOf(ctx, c.UserID, c.ClientID)
		switch {
		case err == nil:
			c.Scopes = append(c.Scopes, old.Scopes...)
			c.Claims = append(c.Claims, old.Claims...)
		case !errors.Is(err, ErrNotFound):
			return err
		}
		scopes, err := nameSet(c.Scopes)
		if err != nil {
			return err
		}
		claims, err := nameSet(c.Claims)
		if err != nil {
			return err
		}
		_, err = s.exec(ctx, `INSERT INTO consents (user_id, client_id, scopes, claims, granted_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, claims = excluded.claims,
				granted_at = excluded.granted_at`,
			c.UserID, c.ClientID, scopes, claims, micro(c.GrantedAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("remember consent of %q for %q: %w", c.UserID, c.ClientID, err)
	}
	return nil
}

const consentCols = `user_id, client_id, scopes, claims, granted_at`

func scanConsent(sc interface{ Scan(...any) error }) (*Consent, error) {
	var c Consent
	var scopes, claims string
	var at sql.NullInt64
	if err := sc.Scan(&c.UserID, &c.ClientID, &scopes, &claims, &at); err != nil {
		return nil, err
	}
	c.Scopes, c.Claims, c.GrantedAt = strings.Fields(scopes), strings.Fields(claims), fromMicro(at)
	return &c, nil
}

// ConsentOf returns the officer's remembered decision for the client.
// ErrNotFound when there is none.
func (s *Store) ConsentOf(ctx context.Context, userID, clientID string) (*Consent, error) {
	c, err := scanConsent(s.queryRow(ctx, rd, `SELECT `+consentCols+` FROM consents WHERE user_id = ? AND client_id = ?`,
		userID, clientID))
	if err != nil {
		return nil, s.notFound(err, "consent")
	}
	return c, nil
}

// Consents lists the officer's remembered decisions, by client id.
func (s *Store) Consents(ctx context.Context, userID string) ([]Consent, error) {
	rows, err := s.query(ctx, rd, `SELECT `+consentCols+` FROM consents WHERE user_id = ? ORDER BY client_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list consents of %q: %w", userID, err)
	}
	defer rows.Close()
	var out []Consent
	for rows.Next() {
		c, err := scanConsent(rows)
		if err != nil {
			return nil, fmt.Errorf("list consents of %q: %w", userID, s.mapErr(err))
		}
		out = append(out, *c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list consents of %q: %w", userID, s.mapErr(err))
	}
	return out, nil
}

// WithdrawConsent forgets the officer's remembered decision for the
// client: it will ask again. With revoke, the codes, access and refresh
// tokens the client holds for the officer are deactivated too, in the same
// transaction (the account page's withdrawal). ErrNotFound when there is no
// decision (and then nothing is revoked).
func (s *Store) WithdrawConsent(ctx context.Context, userID, clientID string, revoke bool) error {
	if userID == "" || clientID == "" {
		return invalid("withdraw consent: user id or client id is empty")
	}
	err := s.InTx(ctx, func(ctx context.Context) error {
		n, err := s.execN(ctx, `DELETE FROM consents WHERE user_id = ? AND client_id = ?`, userID, clientID)
		switch {
		case err != nil:
			return err
		case n == 0:
			return ErrNotFound
		case !revoke:
			return nil
		}
		_, err = s.exec(ctx, `UPDATE oauth SET active = 0 WHERE subject = ? AND client_id = ? AND active = 1 AND kind IN `+revocableKinds,
			userID, clientID)
		return err
	})
	if err != nil {
		return fmt.Errorf("withdraw consent of %q for %q: %w", userID, clientID, err)
	}
	return nil
}

// DecideAuthRequest records the officer's answer on the consent page
// (ConsentGranted or ConsentDeclined) to the parked request id, once: of
// racing answers one wins and the others get ErrConflict. An answer given
// by another officer (a browser that changed hands mid-way) counts for
// nothing and may be replaced. ErrNotFound when the request does not exist
// or has expired at at.
func (s *Store) DecideAuthRequest(ctx context.Context, id, userID, decision string, at time.Time) error {
	switch {
	case id == "":
		return invalid("decision without request id")
	case userID == "":
		return invalid("decision without user id")
	case decision != ConsentGranted && decision != ConsentDeclined:
		return invalid("decision %q is not %s or %s", decision, ConsentGranted, ConsentDeclined)
	}
	err := s.InTx(ctx, func(ctx context.Context) error {
		n, err := s.execN(ctx, `UPDATE auth_requests SET decision = ?, decided_by = ?, decided_at = ?
			WHERE id = ? AND expires_at > ? AND (decision = '' OR decided_by <> ?)`,
			decision, userID, micro(at), id, at.UnixMicro(), userID)
		if err != nil || n > 0 {
			return err
		}
		var one int
		if err := s.row(ctx, wr, `SELECT 1 FROM auth_requests WHERE id = ? AND expires_at > ?`,
			[]any{id, at.UnixMicro()}, &one); err != nil {
			return err
		}
		return ErrConflict
	})
	if err != nil {
		return fmt.Errorf("decide authorization request: %w", err)
	}
	return nil
}
