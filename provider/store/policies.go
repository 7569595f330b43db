package store

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
)

// Accept records that a user accepted a version of a document. Every
// acceptance is kept; Acceptances reports the latest per document. A zero
// AcceptedAt is set to now. ErrNotFound when the user does not exist.
func (s *Store) Accept(ctx context.Context, a Acceptance) error {
	switch {
	case a.UserID == "":
		return invalid("acceptance without user id")
	case a.Document == "":
		return invalid("acceptance without document")
	case a.Version == "":
		return invalid("acceptance without version")
	}
	if a.AcceptedAt.IsZero() {
		a.AcceptedAt = s.now()
	}
	_, err := s.exec(ctx, `INSERT INTO acceptances (user_id, document, version, accepted_at, client_addr) VALUES (?, ?, ?, ?, ?)`,
		a.UserID, a.Document, a.Version, micro(a.AcceptedAt), a.ClientAddr)
	if err != nil {
		return fmt.Errorf("record acceptance of %s %s by %q: %w", a.Document, a.Version, a.UserID, err)
	}
	return nil
}

// Acceptances returns the user's latest acceptance of each document, ordered
// by document name.
func (s *Store) Acceptances(ctx context.Context, userID string) ([]Acceptance, error) {
	// Oldest first, so the last row seen for a document is the latest one
	// (id breaks ties between acceptances in the same microsecond).
	rows, err := s.query(ctx, rd, `SELECT document, version, accepted_at, client_addr FROM acceptances
		WHERE user_id = ? ORDER BY accepted_at, id`, userID)
	if err != nil {
		return nil, fmt.Errorf("load acceptances of %q: %w", userID, err)
	}
	defer rows.Close()
	latest := map[string]Acceptance{}
	for rows.Next() {
		a := Acceptance{UserID: userID}
		var at sql.NullInt64
		if err := rows.Scan(&a.Document, &a.Version, &at, &a.ClientAddr); err != nil {
			return nil, fmt.Errorf("load acceptances of %q: %w", userID, s.mapErr(err))
		}
		a.AcceptedAt = fromMicro(at)
		latest[a.Document] = a
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load acceptances of %q: %w", userID, s.mapErr(err))
	}
	out := make([]Acceptance, 0, len(latest))
	for _, a := range latest {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Document < out[j].Document })
	return out, nil
}
