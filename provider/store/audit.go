package store

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// auditLockID serializes AppendAudit on PostgreSQL (pg_advisory_xact_lock):
// two appends reading the same last hash would fork the chain.
const auditLockID = 0x61756474 // "audt"

// The audit chain. Each event's Hash is
//
//	hex HMAC-SHA-256(audit key, PrevHash ‖ canonical fields)
//
// under the audit key (OpenOptions.AuditKey: derived from the deployment's
// key-encryption key, never stored), so whoever edits, removes or reorders
// rows in a copy of the database cannot recompute the chain to hide it. The
// canonical encoding is a JSON array of strings (time as unix
// microseconds): unambiguous, and stable across Go versions because it
// holds only strings.
//
// Lanyards before the key chained with an unkeyed SHA-256 of the same
// input. Those events stay as they are, a prefix of the chain: the
// migration that brought the key appended EventAuditKeyed, keyed and
// chained to the last of them (keyAuditChain), so they are vouched for too —
// changing one changes the hash the keyed event holds. AuditChain accepts
// unkeyed events only before that event, and a trail with no keyed event
// not at all.

func auditCanon(e *AuditEvent) []byte {
	fields := []string{
		strconv.FormatInt(e.At.UnixMicro(), 10), string(e.Event), e.UserID, e.Username,
		e.ClientID, e.ClientAddr, e.UserAgent, string(e.Detail),
	}
	canon, _ := json.Marshal(fields) // strings only: cannot fail
	return canon
}

// AuditHash is the keyed hash that chains e to prev. It is the one place
// the chain's hash is computed: appends, batches, the fixture, AuditChain
// (CheckAudit, and the verification of exported archives) call it. "" when
// the store has no audit key.
func (s *Store) AuditHash(prev string, e *AuditEvent) string {
	if s.auditKey == nil {
		return ""
	}
	m := hmac.New(sha256.New, s.auditKey)
	m.Write([]byte(prev))
	m.Write(auditCanon(e))
	return hex.EncodeToString(m.Sum(nil))
}

// unkeyedAuditHash is the hash older Lanyards chained with.
func unkeyedAuditHash(prev string, e *AuditEvent) string {
	h := sha256.New()
	h.Write([]byte(prev))
	h.Write(auditCanon(e))
	return hex.EncodeToString(h.Sum(nil))
}

// AuditKeyPurpose is what the audit key is derived for from the
// key-encryption key: OpenOptions.AuditKey = box.Derive(AuditKeyPurpose).
const AuditKeyPurpose = "audit-chain"

// ErrNoAuditKey is returned by the methods that write or check the audit
// chain when the store was opened without OpenOptions.AuditKey.
var ErrNoAuditKey = errors.New("store: the audit trail's key is not set (open the store with the key-encryption key's audit key)")

// prepareAudit checks an event and returns the copy that will be stored (At
// set to now when zero, truncated to the stored microsecond).
func (s *Store) prepareAudit(e *AuditEvent) (*AuditEvent, error) {
	if e == nil || e.Event == "" {
		return nil, invalid("audit event without a name")
	}
	if len(e.Detail) > 0 && !json.Valid(e.Detail) {
		return nil, invalid("audit detail is not JSON")
	}
	if s.auditKey == nil {
		return nil, fmt.Errorf("append audit event %s: %w", e.Event, ErrNoAuditKey)
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

// keyAuditChain is the migration hook of 0008_audit_keyed (migrate.go): in
// that migration's transaction, the upgrade from an unkeyed chain appends
// EventAuditKeyed, keyed and chained to the newest unkeyed event, naming it.
// It is the only place a keyed event may follow unkeyed ones (AuditChain
// refuses any other), so it happens once, at the upgrade: a chain rewritten
// without the key later is not vouched for by the next start.
func keyAuditChain(ctx context.Context, s *Store, tx *sql.Tx) error {
	if s.dialect == DialectPostgres {
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", auditLockID)); err != nil {
			return err
		}
	}
	// The newest event, or when every event was pruned the last one removed.
	var headID int64
	var headHash string
	err := tx.QueryRowContext(ctx, `SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1`).Scan(&headID, &headHash)
	if errors.Is(err, sql.ErrNoRows) {
		err = tx.QueryRowContext(ctx, `SELECT through_id, hash FROM audit_anchor WHERE id = 1`).Scan(&headID, &headHash)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return nil // an empty trail is keyed from its first event
	}
	if err != nil {
		return err
	}
	if s.auditKey == nil {
		return fmt.Errorf("this version keys the audit chain, which needs the key-encryption key: %w", ErrNoAuditKey)
	}
	detail, _ := json.Marshal(map[string]int64{"unkeyed_through": headID})
	ev := AuditEvent{At: truncUTC(s.now()), Event: EventAuditKeyed, Detail: detail, PrevHash: headHash}
	ev.Hash = s.AuditHash(ev.PrevHash, &ev)
	return tx.QueryRowContext(ctx, s.sq(qAuditInsert), auditValues(&ev)...).Scan(&ev.ID)
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
		in, events := inList("event", f.Events)
		where, args = append(where, in), append(args, events...)
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

// AuditCheck is what CheckAudit found.
type AuditCheck struct {
	// Events is how many events were checked; HeadID and HeadHash are the
	// newest one's (0 and "" for an empty trail): what an operator writes
	// down to anchor the trail outside the database (`lanyard audit verify
	// --expect-head`).
	Events   int64
	HeadID   int64
	HeadHash string
	// UnkeyedThrough is the last event written without the key by an older
	// Lanyard (0 when there is none): vouched for by the keyed event after it.
	UnkeyedThrough int64
	// UnkeyedDuringUpgrade counts the events nodes of the older version
	// wrote, unkeyed, in the UpgradeGrace after that keyed event.
	UnkeyedDuringUpgrade int64
	// BadID is the first event that does not check (0 when the chain is
	// intact), and Problem says why.
	BadID   int64
	Problem string
}

// AuditChain checks events one by one in chain order (CheckAudit, and any
// holder of events such as an archive, use it).
type AuditChain struct {
	s     *Store
	check AuditCheck
	prev  string
	keyed bool // a keyed event was seen
	// upgradedAt is when the upgrade keyed the chain (the EventAuditKeyed
	// after unkeyed events); zero when the chain was keyed from the start.
	upgradedAt time.Time
	// upgradeOver: a keyed event dated UpgradeGrace or more after the
	// upgrade has been checked. A keyed date cannot be forged, so from
	// there on the chain itself says the upgrade is over, whatever date a
	// later unkeyed event claims.
	upgradeOver bool
	prevAt      time.Time // the At of the event before
}

// NewAuditChain starts a chain check at prev (the hash of the event before
// the first one checked: "" at the beginning of the trail).
func (s *Store) NewAuditChain(prev string) *AuditChain { return &AuditChain{s: s, prev: prev} }

// Next checks e, the next event; false (and Result's BadID and Problem)
// when it does not check. After a false, the chain stays broken.
func (c *AuditChain) Next(e *AuditEvent) bool {
	if c.check.BadID != 0 {
		return false
	}
	fail := func(problem string) bool {
		c.check.BadID, c.check.Problem = e.ID, problem
		return false
	}
	if e.PrevHash != c.prev {
		return fail("it does not chain to the event before it: an event was removed, inserted or reordered")
	}
	keyedHash := hmac.Equal([]byte(c.s.AuditHash(c.prev, e)), []byte(e.Hash))
	switch {
	case keyedHash:
		if !c.keyed && c.check.UnkeyedThrough != 0 && !isKeyedAfter(e, c.check.UnkeyedThrough) {
			return fail("the unkeyed events before it are not vouched for by the upgrade's " + string(EventAuditKeyed) +
				" event: they were rewritten without the key")
		}
		if e.Event == EventAuditKeyed && c.upgradedAt.IsZero() {
			c.upgradedAt = e.At // (the unkeyed events before may be pruned)
		}
		if !c.upgradedAt.IsZero() && e.At.Sub(c.upgradedAt) >= UpgradeGrace {
			c.upgradeOver = true
		}
		c.keyed = true
	case unkeyedAuditHash(c.prev, e) != e.Hash && c.keyed:
		return fail("it does not match its hash under the deployment's key: it was changed, or its hash recomputed without the key")
	case unkeyedAuditHash(c.prev, e) != e.Hash:
		return fail("it does not match its hash: it was changed after it was written")
	case !c.keyed:
		c.check.UnkeyedThrough = e.ID
	case !c.upgradedAt.IsZero() && !c.upgradeOver && !e.At.Before(c.upgradedAt) &&
		e.At.Sub(c.upgradedAt) < UpgradeGrace && !e.At.Before(c.prevAt.Add(-upgradeSkew)):
		// A node of the older version still running during a rolling
		// upgrade. Only the tail can be forged so (the next keyed event
		// holds its hash), only while no keyed event has shown the
		// upgrade's first UpgradeGrace over, and only dated after the
		// event before it (give or take the nodes' skew).
		c.check.UnkeyedDuringUpgrade++
	default:
		return fail("it carries an unkeyed hash after the chain was keyed: it was written, or recomputed, without the key")
	}
	c.prev, c.prevAt = e.Hash, e.At
	c.check.Events++
	c.check.HeadID, c.check.HeadHash = e.ID, e.Hash
	return true
}

// UpgradeGrace is how long after the upgrade that keyed the chain events
// written unkeyed by nodes of the older version are accepted: the rolling
// upgrade ("replace the nodes one by one").
const UpgradeGrace = 24 * time.Hour

// upgradeSkew is how much earlier than the event chained before it an
// older node's event may be dated during the upgrade: an event is dated
// when its transaction writes it and chained when the transaction commits,
// and the nodes' clocks differ a little.
const upgradeSkew = time.Minute

// isKeyedAfter reports whether e is the EventAuditKeyed that vouches for
// the unkeyed events up to id.
func isKeyedAfter(e *AuditEvent, id int64) bool {
	var d struct {
		Through int64 `json:"unkeyed_through"`
	}
	return e.Event == EventAuditKeyed && json.Unmarshal(e.Detail, &d) == nil && d.Through == id
}

// Result is the check so far.
func (c *AuditChain) Result() AuditCheck { return c.check }

// Keyed reports whether a keyed event was checked.
func (c *AuditChain) Keyed() bool { return c.keyed }

// CheckAudit walks the whole chain (see AuditChain) and reports its head.
// After a prune the chain starts at the anchor (GetAuditAnchor): the first
// remaining event must chain to the last one removed. ErrNoAuditKey without
// the audit key.
func (s *Store) CheckAudit(ctx context.Context) (AuditCheck, error) {
	if s.auditKey == nil {
		return AuditCheck{}, fmt.Errorf("verify audit: %w", ErrNoAuditKey)
	}
	anchor, err := s.GetAuditAnchor(ctx)
	if err != nil {
		return AuditCheck{}, fmt.Errorf("verify audit: %w", err)
	}
	c := s.NewAuditChain(anchor.Hash)
	err = s.EachAudit(ctx, anchor.ThroughID, 0, func(e *AuditEvent) error {
		if !c.Next(e) {
			return errStopWalk
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopWalk) {
		return AuditCheck{}, fmt.Errorf("verify audit: %w", err)
	}
	// A trail with no keyed event is broken at its head: the migration
	// that brought the key keyed the chain, so a trail of unkeyed events
	// only was recomputed by someone without the key. (An archive of the
	// years before the key may hold only unkeyed events.)
	r := c.Result()
	if r.BadID == 0 && r.Events > 0 && !c.Keyed() {
		r.BadID = r.HeadID
		r.Problem = "the newest events are not keyed: the chain was recomputed without the key (or this database was never opened by a Lanyard that keys it)"
	}
	return r, nil
}

// VerifyAudit is CheckAudit's verdict: the id of the first event that does
// not check, 0 when the chain is intact.
func (s *Store) VerifyAudit(ctx context.Context) (badID int64, err error) {
	c, err := s.CheckAudit(ctx)
	return c.BadID, err
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
