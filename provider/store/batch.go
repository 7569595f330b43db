package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// OAuthWrite is one token of a group commit with the audit event that records
// its issue (nil: none).
type OAuthWrite struct {
	Row   *OAuthRow
	Audit *AuditEvent
}

// CreateOAuthBatch stores many rows and their audit events in one transaction:
// all or nothing, durable when it returns nil. It is the token endpoint's
// group commit (see provider/groupcommit.go): what concurrent requests share is
// the transaction and its commit, and on PostgreSQL the round trips too — the
// whole batch is two pipelined round trips whatever its size, one INSERT for
// the rows and one for the events:
//
//	BEGIN; INSERT INTO oauth … unnest(…); SELECT pg_advisory_xact_lock; SELECT last hash   → one round trip
//	INSERT INTO audit … unnest(…); COMMIT                                                  → one round trip
//
// The events are chained (AuditHash) in the order given, after the previous
// last event, under the same lock AppendAudit takes. Each event's ID, PrevHash
// and Hash (and At, when zero) are filled in on success — when the
// transaction commits if ctx carries one, which the batch then joins.
func (s *Store) CreateOAuthBatch(ctx context.Context, ws []OAuthWrite) error {
	if len(ws) == 0 {
		return nil
	}
	rows := make([]oauthArgs, len(ws))
	var evs []*AuditEvent
	for i, w := range ws {
		a, err := newOAuthArgs(w.Row)
		if err != nil {
			return err
		}
		rows[i] = a
		if w.Audit != nil {
			ev, err := s.prepareAudit(w.Audit)
			if err != nil {
				return err
			}
			evs = append(evs, ev)
		}
	}
	if s.dialect != DialectPostgres || (txFrom(ctx, s) != nil && !txFrom(ctx, s).done) {
		// One transaction of single statements; the events, given as the
		// caller's, are filled in when it commits (AppendAudit).
		err := s.InTx(ctx, func(ctx context.Context) error {
			for _, a := range rows {
				if _, err := s.exec(ctx, qCreateOAuth, a.values()...); err != nil {
					return fmt.Errorf("create %s: %w", a.r.Kind, err)
				}
			}
			for _, w := range ws {
				if w.Audit != nil {
					if err := s.AppendAudit(ctx, w.Audit); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("create %d tokens: %w", len(ws), err)
		}
		for i, w := range ws {
			w.Row.AccessSignatureHash = rows[i].accessHash
		}
		return nil
	}
	if err := s.pipelineBatch(ctx, rows, evs); err != nil {
		return fmt.Errorf("create %d tokens: %w", len(ws), err)
	}
	j := 0
	for i, w := range ws {
		w.Row.AccessSignatureHash = rows[i].accessHash
		if w.Audit != nil {
			*w.Audit = *evs[j]
			j++
		}
	}
	return nil
}

// oauthArgs is a validated row with its keys hashed.
type oauthArgs struct {
	r                   *OAuthRow
	sigHash, accessHash string
}

func newOAuthArgs(r *OAuthRow) (oauthArgs, error) {
	switch {
	case r == nil || !validKind(r.Kind):
		return oauthArgs{}, invalid("unknown OAuth row kind")
	case r.Signature == "":
		return oauthArgs{}, invalid("OAuth row without signature")
	case r.RequestID == "":
		return oauthArgs{}, invalid("OAuth row without request id")
	}
	a := oauthArgs{r: r, sigHash: hashKey(r.Signature)}
	if r.AccessSignature != "" {
		a.accessHash = hashKey(r.AccessSignature)
	}
	return a, nil
}

func (a oauthArgs) values() []any {
	r := a.r
	return []any{r.Kind, a.sigHash, r.RequestID, r.ClientID, r.Subject, r.SessionID, boolInt(r.Active),
		a.accessHash, micro(r.RequestedAt), micro(r.ExpiresAt), r.Data}
}

// The batch statements (PostgreSQL): one row per array element. WITH
// ORDINALITY … ORDER BY makes the identity values follow the chain's order.
const (
	qCreateOAuthUnnest = `INSERT INTO oauth (kind, signature_hash, request_id, client_id, subject, session_id, active,
		access_signature_hash, requested_at, expires_at, data)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[],
			$8::text[], $9::bigint[], $10::bigint[], $11::bytea[])`
	qAuditInsertUnnest = `INSERT INTO audit (at, event, user_id, username, client_id, client_addr, user_agent,
		detail, prev_hash, hash)
		SELECT at, event, user_id, username, client_id, client_addr, user_agent, detail, prev_hash, hash
		FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
			$8::bytea[], $9::text[], $10::text[]) WITH ORDINALITY
			AS u(at, event, user_id, username, client_id, client_addr, user_agent, detail, prev_hash, hash, n)
		ORDER BY n RETURNING id, hash`
)

// pipelineBatch is the PostgreSQL batch on a connection of the pool, in two
// pipelined round trips (see CreateOAuthBatch). Any failure rolls back; a
// connection left in a transaction is discarded by the driver, never reused.
func (s *Store) pipelineBatch(ctx context.Context, rows []oauthArgs, evs []*AuditEvent) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return s.mapErr(err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn()
		err := s.pipeline(ctx, pc, rows, evs)
		if err != nil && pc.PgConn().TxStatus() != 'I' {
			if _, rerr := pc.Exec(context.WithoutCancel(ctx), "ROLLBACK"); rerr != nil {
				pc.Close(context.WithoutCancel(ctx))
			}
		}
		return err
	})
	return s.mapErr(err)
}

func (s *Store) pipeline(ctx context.Context, pc *pgx.Conn, rows []oauthArgs, evs []*AuditEvent) error {
	n := len(rows)
	kind, sig, req, cli, sub, sid, acc := make([]string, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	active := make([]int32, n)
	requested, expires := make([]*int64, n), make([]*int64, n)
	data := make([][]byte, n)
	for i, a := range rows {
		r := a.r
		kind[i], sig[i], req[i], cli[i], sub[i], sid[i], acc[i] = r.Kind, a.sigHash, r.RequestID, r.ClientID, r.Subject, r.SessionID, a.accessHash
		active[i] = int32(boolInt(r.Active))
		requested[i], expires[i] = microPtr(r.RequestedAt), microPtr(r.ExpiresAt)
		data[i] = r.Data
	}
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(qCreateOAuthUnnest, kind, sig, req, cli, sub, sid, active, acc, requested, expires, data)
	if len(evs) == 0 {
		b.Queue("COMMIT")
		return pc.SendBatch(ctx, b).Close()
	}
	b.Queue("SELECT pg_advisory_xact_lock($1)", int64(auditLockID))
	b.Queue(qAuditLast)
	br := pc.SendBatch(ctx, b)
	var prev string
	for range 3 {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return err
		}
	}
	if err := br.QueryRow().Scan(&prev); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		br.Close()
		return err
	}
	if err := br.Close(); err != nil {
		return err
	}

	m := len(evs)
	at := make([]int64, m)
	event, uid, uname, ecli, addr, ua, prevs, hashes := make([]string, m), make([]string, m), make([]string, m),
		make([]string, m), make([]string, m), make([]string, m), make([]string, m), make([]string, m)
	detail := make([][]byte, m)
	byHash := make(map[string]*AuditEvent, m)
	for i, ev := range evs {
		ev.PrevHash = prev
		ev.Hash = s.AuditHash(prev, ev)
		prev = ev.Hash
		at[i], event[i], uid[i], uname[i], ecli[i], addr[i], ua[i] = ev.At.UnixMicro(), string(ev.Event), ev.UserID, ev.Username, ev.ClientID, ev.ClientAddr, ev.UserAgent
		detail[i], prevs[i], hashes[i] = ev.Detail, ev.PrevHash, ev.Hash
		byHash[ev.Hash] = ev
	}
	b = &pgx.Batch{}
	b.Queue(qAuditInsertUnnest, at, event, uid, uname, ecli, addr, ua, detail, prevs, hashes)
	b.Queue("COMMIT")
	br = pc.SendBatch(ctx, b)
	rs, err := br.Query()
	if err != nil {
		br.Close()
		return err
	}
	for rs.Next() {
		var id int64
		var h string
		if err := rs.Scan(&id, &h); err != nil {
			rs.Close()
			br.Close()
			return err
		}
		if ev := byHash[h]; ev != nil {
			ev.ID = id
		}
	}
	rs.Close()
	if err := rs.Err(); err != nil {
		br.Close()
		return err
	}
	if _, err := br.Exec(); err != nil { // COMMIT
		br.Close()
		return err
	}
	return br.Close()
}

// microPtr is micro for a pgx array element.
func microPtr(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	v := t.UnixMicro()
	return &v
}
