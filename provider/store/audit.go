package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// auditLockID serializes AppendAudit on PostgreSQL (pg_advisory_xact_lock):
// two appends reading the same last hash would fork the chain.
const auditLockID = 0x61756474 // "audt"

// AuditHash chains an event to its predecessor: hex SHA-256 of the previous
// hash followed by the canonical encoding of the fields. The canonical
// encoding is a JSON array of strings (time as unix microseconds): unambiguous,
// and stable across Go versions because it holds only strings.
//
// It is the one place the chain's hash is computed: appends, batches,
// VerifyAudit and the verification of exported archives all call it, so a
// keyed hash can replace it without touching them.
func (s *Store) AuditHash(prev string, e *AuditEvent) string {
	fields := []string{
		strconv.FormatInt(e.At.UnixMicro(), 10), string(e.Event), e.UserID, e.Username,
		e.ClientID, e.ClientAddr, e.UserAgent, string(e.Detail),
	}
	canon, _ := json.Marshal(fields) // strings only: cannot fail
	h := sha256.New()
	h.Write([]byte(prev))
	h.Write(canon)
	return hex.EncodeToString(h.Sum(nil))
}

// prepareAudit checks an event and returns the copy that will be stored (At
// set to now when zero, truncated to the stored microsecond).
func (s *Store) prepareAudit(e *AuditEvent) (*AuditEvent, error) {
	if e == nil || e.Event == "" {
		return nil, invalid("audit event without a name")
	}
	if len(e.Detail) > 0 && !json.Valid(e.Detail) {
		return nil, invalid("audit detail is not JSON")
	}
	ev := *e
	if ev.At.IsZero() {
		ev.At = s.now()
	}
	ev.At = truncUTC(ev.At)
	return &ev, nil
}

// lockAuditHead serializes appends to the chain for the rest of the ctx's
// transaction and returns the newest event's hash ("" for an empty trail, or
// the hash the trail was pruned at). On SQLite the transaction already holds
// the write lock; PostgreSQL takes an advisory transaction lock first, in its
// own statement, so the read that follows sees every append committed before.
func (s *Store) lockAuditHead(ctx context.Context) (string, error) {
	if s.dialect == DialectPostgres {
		if _, err := s.exec(ctx, fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", auditLockID)); err != nil {
			return "", err
		}
	}
	var prev string
	err := s.row(ctx, wr, qAuditLast, nil, &prev)
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	return prev, err
}

func auditValues(ev *AuditEvent) []any {
	return []any{ev.At.UnixMicro(), ev.Event, ev.UserID, ev.Username, ev.ClientID, ev.ClientAddr, ev.UserAgent,
		ev.Detail, ev.PrevHash, ev.Hash}
}

// AppendAudit appends an event and fills e.ID, e.PrevHash and e.Hash (and e.At
// with now when zero; e.At is truncated to the microsecond stored). Appends are
// serialized so the chain never forks (lockAuditHead).
//
// Inside a transaction the event is appended when the transaction commits,
// after its other writes, and e is filled in then: the chain's lock is held
// only for the append and the commit, not for the rest of the transaction —
// on PostgreSQL every audited write of every node waits for that lock. The
// event still commits or rolls back with the change it records; a malformed
// event is refused at once.
func (s *Store) AppendAudit(ctx context.Context, e *AuditEvent) error {
	ev, err := s.prepareAudit(e)
	if err != nil {
		return err
	}
	if st := txFrom(ctx, s); st != nil && !st.done {
		st.audit = append(st.audit, pendingAudit{ev: ev, dst: e})
		return nil
	}
	return s.InTx(ctx, func(ctx context.Context) error { return s.AppendAudit(ctx, e) })
}

// flushAudit appends a committing transaction's events to the chain.
func (s *Store) flushAudit(ctx context.Context, st *txState) error {
	if len(st.audit) == 0 {
		return nil
	}
	prev, err := s.lockAuditHead(ctx)
	if err != nil {
		return fmt.Errorf("append audit events: %w", err)
	}
	for _, p := range st.audit {
		ev := p.ev
		ev.PrevHash = prev
		ev.Hash = s.AuditHash(prev, ev)
		if err := s.row(ctx, wr, qAuditInsert, auditValues(ev), &ev.ID); err != nil {
			return fmt.Errorf("append audit event %s: %w", ev.Event, err)
		}
		prev = ev.Hash
	}
	return nil
}

const (
	qAuditLast   = `SELECT hash FROM audit ORDER BY id DESC LIMIT 1`
	qAuditInsert = `INSERT INTO audit (at, event, user_id, username, client_id, client_addr,
		user_agent, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`
)

const auditCols = `id, at, event, user_id, username, client_id, client_addr, user_agent, detail, prev_hash, hash`

func scanAudit(sc interface{ Scan(...any) error }) (AuditEvent, error) {
	var e AuditEvent
	var at sql.NullInt64
	err := sc.Scan(&e.ID, &at, &e.Event, &e.UserID, &e.Username, &e.ClientID, &e.ClientAddr, &e.UserAgent,
		&e.Detail, &e.PrevHash, &e.Hash)
	e.At = fromMicro(at)
	return e, err
}

// Audit returns the events matching f, oldest first (newest first with
// f.Newest, so Limit keeps the newest). Event matches exactly, or as a
// prefix when it ends in "." ("signin." matches "signin.success"); Events
// keeps only the events listed. Limit 0 means no limit.
func (s *Store) Audit(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	var where []string
	var args []any
	if f.UserID != "" {
		where, args = append(where, "user_id = ?"), append(args, f.UserID)
	}
	switch {
	case strings.HasSuffix(f.Event, "."):
		// Not a range on audit_event: under PostgreSQL's linguistic
		// collations "signin." ≤ event < "signin/" is not the prefix. Since
		// (24h by default in `lanyard audit`) bounds the walk instead.
		where, args = append(where, "substr(event, 1, ?) = ?"), append(args, int64(len(f.Event)), f.Event)
	case f.Event != "":
		where, args = append(where, "event = ?"), append(args, f.Event)
	}
	if len(f.Events) > 0 {
		where = append(where, "event IN (?"+strings.Repeat(", ?", len(f.Events)-1)+")")
		for _, e := range f.Events {
			args = append(args, string(e))
		}
	}
	if !f.Since.IsZero() {
		// Every event at or after Since has an id at or after the first
		// such event's (found on the audit_at index): the walk in id order
		// starts there instead of at the beginning of a long trail.
		where = append(where, "id >= (SELECT MIN(id) FROM audit WHERE at >= ?) AND at >= ?")
		args = append(args, f.Since.UnixMicro(), f.Since.UnixMicro())
	}
	if f.AfterID > 0 {
		where, args = append(where, "id > ?"), append(args, f.AfterID)
	}
	q := `SELECT ` + auditCols + ` FROM audit`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id"
	if f.Newest {
		q += " DESC"
	}
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, int64(f.Limit))
	}
	rows, err := s.query(ctx, rd, q, args...)
	if err != nil {
		return nil, fmt.Errorf("load audit: %w", err)
	}
	defer rows.Close()
	var out []AuditEvent
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return nil, fmt.Errorf("load audit: %w", s.mapErr(err))
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load audit: %w", s.mapErr(err))
	}
	return out, nil
}

// VerifyAudit walks the whole chain and returns the id of the first event
// whose PrevHash is not its predecessor's Hash or whose Hash does not match
// its fields; 0 when the chain is intact. After a prune the chain starts at
// the anchor (GetAuditAnchor): the first remaining event must chain to the
// last one removed.
func (s *Store) VerifyAudit(ctx context.Context) (badID int64, err error) {
	anchor, err := s.GetAuditAnchor(ctx)
	if err != nil {
		return 0, fmt.Errorf("verify audit: %w", err)
	}
	prev := anchor.Hash
	err = s.EachAudit(ctx, anchor.ThroughID, 0, func(e *AuditEvent) error {
		if e.PrevHash != prev || s.AuditHash(prev, e) != e.Hash {
			badID = e.ID
			return errStopWalk
		}
		prev = e.Hash
		return nil
	})
	if err != nil && !errors.Is(err, errStopWalk) {
		return 0, fmt.Errorf("verify audit: %w", err)
	}
	return badID, nil
}

var errStopWalk = errors.New("stop")

// LastAuditID is the id of the newest audit event (0 when there is none): where
// a reader that tails the trail (metrics, `lanyard audit --follow`) starts
// without reading what came before.
func (s *Store) LastAuditID(ctx context.Context) (int64, error) {
	var id sql.NullInt64
	if err := s.row(ctx, rd, `SELECT MAX(id) FROM audit`, nil, &id); err != nil {
		return 0, fmt.Errorf("last audit id: %w", err)
	}
	return id.Int64, nil
}
