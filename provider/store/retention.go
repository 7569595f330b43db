package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// The audit trail's retention. Old events are archived (`lanyard audit
// export`, JSON lines) and then removed (PruneAudit); the anchor records the
// last removed event, whose hash the first remaining one chains to, so the
// trail still verifies from the anchor, and the archive verifies up to the
// anchor: together they are the whole chain.

// AuditAnchor is where the trail starts after a prune: the last event removed
// (ThroughID, Hash), when, and how many events were removed in all. The zero
// value means nothing was ever pruned: the trail starts at the beginning.
type AuditAnchor struct {
	ThroughID int64
	Hash      string
	PrunedAt  time.Time
	Events    int64
}

// pruneBatch bounds one DELETE of PruneAudit: each batch is its own short
// transaction, so appends (which wait for the same write lock on SQLite) get
// their turn in between.
const pruneBatch = 10_000

// GetAuditAnchor returns the anchor (zero when the trail was never pruned).
func (s *Store) GetAuditAnchor(ctx context.Context) (AuditAnchor, error) {
	var a AuditAnchor
	var pruned sql.NullInt64
	err := s.row(ctx, rd, `SELECT through_id, hash, pruned_at, events FROM audit_anchor WHERE id = 1`, nil,
		&a.ThroughID, &a.Hash, &pruned, &a.Events)
	if errors.Is(err, ErrNotFound) {
		return AuditAnchor{}, nil
	}
	if err != nil {
		return AuditAnchor{}, fmt.Errorf("load audit anchor: %w", err)
	}
	a.PrunedAt = fromMicro(pruned)
	return a, nil
}

// AuditCut is the newest event that may be archived and pruned for a
// retention ending at until: the id just before the first event at or after
// until (events are cut in id order, which is the chain's order, so an event
// written with a late clock stays with those after it). 0 when there is none.
func (s *Store) AuditCut(ctx context.Context, until time.Time) (int64, error) {
	var first, last sql.NullInt64
	if err := s.row(ctx, rd, `SELECT MIN(id) FROM audit WHERE at >= ?`, []any{until.UnixMicro()}, &first); err != nil {
		return 0, fmt.Errorf("audit cut: %w", err)
	}
	if first.Valid {
		if err := s.row(ctx, rd, `SELECT MAX(id) FROM audit WHERE id < ?`, []any{first.Int64}, &last); err != nil {
			return 0, fmt.Errorf("audit cut: %w", err)
		}
	} else if err := s.row(ctx, rd, `SELECT MAX(id) FROM audit`, nil, &last); err != nil {
		return 0, fmt.Errorf("audit cut: %w", err)
	}
	return last.Int64, nil
}

// EachAudit calls fn with every event whose id is in (afterID, throughID], in
// id order, streaming (a trail of millions of events is never held in memory).
// throughID 0 means up to the newest. fn's error stops the walk and is
// returned.
func (s *Store) EachAudit(ctx context.Context, afterID, throughID int64, fn func(*AuditEvent) error) error {
	q, args := `SELECT `+auditCols+` FROM audit WHERE id > ?`, []any{afterID}
	if throughID > 0 {
		q, args = q+` AND id <= ?`, append(args, throughID)
	}
	rows, err := s.query(ctx, rd, q+` ORDER BY id`, args...)
	if err != nil {
		return fmt.Errorf("read audit: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return fmt.Errorf("read audit: %w", s.mapErr(err))
		}
		if err := fn(&e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read audit: %w", s.mapErr(err))
	}
	return nil
}

// PruneAudit removes every event up to throughID, whose hash must be
// wantHash (the head of the archive that holds them: what was archived is
// what is removed). It works in batches of pruneBatch events, each its own
// transaction that also moves the anchor, so an interrupted prune leaves a
// shorter trail that still verifies, and returns how many events went.
// ErrConflict when event throughID does not have wantHash; ErrNotFound when
// it does not exist (or was pruned already).
func (s *Store) PruneAudit(ctx context.Context, throughID int64, wantHash string, now time.Time) (int64, error) {
	if throughID <= 0 || wantHash == "" {
		return 0, invalid("prune needs the id and hash of the last event to remove")
	}
	var hash string
	if err := s.row(ctx, rd, `SELECT hash FROM audit WHERE id = ?`, []any{throughID}, &hash); err != nil {
		return 0, fmt.Errorf("prune audit through #%d: %w", throughID, err)
	}
	if hash != wantHash {
		return 0, fmt.Errorf("prune audit through #%d: %w: the event's hash is not the archive's", throughID, ErrConflict)
	}
	var total int64
	for {
		var n int64
		done := false
		err := s.InTx(ctx, func(ctx context.Context) error {
			// The batch ends at the pruneBatch-th remaining event, or at throughID.
			var end int64
			var endHash string
			err := s.row(ctx, wr, `SELECT id, hash FROM audit WHERE id <= ? ORDER BY id LIMIT 1 OFFSET ?`,
				[]any{throughID, int64(pruneBatch - 1)}, &end, &endHash)
			if errors.Is(err, ErrNotFound) {
				end, endHash, done = throughID, wantHash, true
			} else if err != nil {
				return err
			}
			n, err = s.execN(ctx, `DELETE FROM audit WHERE id <= ?`, end)
			if err != nil {
				return err
			}
			_, err = s.exec(ctx, `INSERT INTO audit_anchor (id, through_id, hash, pruned_at, events) VALUES (1, ?, ?, ?, ?)
				ON CONFLICT (id) DO UPDATE SET through_id = excluded.through_id, hash = excluded.hash,
					pruned_at = excluded.pruned_at, events = audit_anchor.events + excluded.events`,
				end, endHash, now.UnixMicro(), n)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("prune audit: %w", err)
		}
		total += n
		if done || n == 0 {
			return total, nil
		}
	}
}
