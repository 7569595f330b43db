package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// Fixture describes bulk data for measuring Lanyard with a full database
// (`lanyard fixture`, the flat-cost benchmarks): officers who have finished
// their first sign-in, live tokens, and a year of audit trail. It is written
// with bulk SQL (COPY on PostgreSQL, prepared statements in large
// transactions on SQLite), not through the API, so that a million rows take
// a minute rather than hours.
//
// Every officer i (1-based) has the id FixtureUserID(i), the username
// FixtureUsername(i), the same password hash and the same sealed TOTP secret,
// and has accepted every document in Documents. Run it on a database nobody
// is using: the audit events are chained after the newest event without
// holding the chain's lock between chunks.
type Fixture struct {
	Officers    int
	Tokens      int
	AuditEvents int

	PasswordHash string            // one argon2id hash shared by every officer
	TOTPSecret   []byte            // sealed by the caller; shared by every officer
	Documents    map[string]string // document id → accepted version
	ClientID     string            // of the tokens (default "fixture")
	Now          time.Time         // default the store's clock

	// Progress, when set, is told of each table's progress.
	Progress func(table string, done, total int)
}

// FixtureUserID and FixtureUsername name the fixture's officer i (1-based).
func FixtureUserID(i int) string   { return fmt.Sprintf("fx-%08d", i) }
func FixtureUsername(i int) string { return fmt.Sprintf("officer-%08d@agency.example", i) }

// fixtureChunk is how many rows a SQLite transaction of the fixture holds.
const fixtureChunk = 50_000

// fixtureTokenData is the serialized request of a fixture token: the size and
// shape of a real one (provider's record), so the table has a real one's
// width.
const fixtureTokenData = `{"id":"%s","requested_at":"2026-01-01T00:00:00Z","client_id":"%s",` +
	`"requested_scopes":["openid","email","profile","offline_access"],"granted_scopes":["openid","email","profile","offline_access"],` +
	`"form":{"grant_type":["authorization_code"],"redirect_uri":["https://docs.agency.example/callback"]},` +
	`"session":{"id_token_claims":{"jti":"","iss":"https://id.agency.example","sub":"%s","aud":["%s"],"nonce":"n",` +
	`"exp":"0001-01-01T00:00:00Z","iat":"2026-01-01T00:00:00Z","rat":"2026-01-01T00:00:00Z","auth_time":"2026-01-01T00:00:00Z",` +
	`"acr":"urn:lanyard:acr:mfa","amr":["pwd","otp","mfa"],"ext":{"sid":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}},` +
	`"headers":{"extra":{}},"expires_at":{"access_token":"2026-01-01T01:00:00Z","refresh_token":"2026-01-31T00:00:00Z"},` +
	`"username":"","subject":"%s"}}`

// GenerateFixture writes f's rows. It refuses a database that already holds
// fixture officers (ErrConflict), and writes nothing for zero counts.
func (s *Store) GenerateFixture(ctx context.Context, f Fixture) error {
	if f.Officers < 0 || f.Tokens < 0 || f.AuditEvents < 0 {
		return invalid("fixture counts must not be negative")
	}
	if f.Officers > 0 && (f.PasswordHash == "" || len(f.TOTPSecret) == 0) {
		return invalid("fixture officers need a password hash and a sealed TOTP secret")
	}
	if f.ClientID == "" {
		f.ClientID = "fixture"
	}
	if f.Now.IsZero() {
		f.Now = s.now()
	}
	now := f.Now.UnixMicro()
	if f.Officers > 0 {
		if _, err := s.UserByID(ctx, FixtureUserID(1)); err == nil {
			return fmt.Errorf("fixture: %w: the database already holds fixture officers", ErrConflict)
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	progress := func(table string) func(done, total int) {
		return func(done, total int) {
			if f.Progress != nil {
				f.Progress(table, done, total)
			}
		}
	}

	// The columns named here; any other keeps its default.
	userColumns := []string{"id", "username", "email", "name", "given_name", "family_name", "state", "password_hash",
		"password_initial", "created_at", "updated_at"}
	name := func(n int) string { return fmt.Sprintf("Officer %d", n) }
	err := s.bulk(ctx, "users", userColumns, f.Officers, progress("users"),
		func(i int) ([]any, error) {
			n := i + 1
			return []any{FixtureUserID(n), FixtureUsername(n), FixtureUsername(n), name(n),
				"Officer", strconv.Itoa(n), UserActive, f.PasswordHash, int64(0), now, now}, nil
		})
	if err != nil {
		return err
	}
	// The console's search terms of each officer, as CreateUser writes
	// them (search.go), so the console finds the fixture's officers.
	terms := 0
	for n := 1; n <= f.Officers; n++ {
		terms += len(searchTerms(FixtureUsername(n), name(n)))
	}
	officer, cur, at := 0, []string(nil), 0
	err = s.bulk(ctx, "user_search", []string{"username", "term"}, terms, progress("user_search"),
		func(int) ([]any, error) {
			for at == len(cur) {
				officer++
				cur, at = searchTerms(FixtureUsername(officer), name(officer)), 0
			}
			at++
			return []any{FixtureUsername(officer), cur[at-1]}, nil
		})
	if err != nil {
		return err
	}
	err = s.bulk(ctx, "totp", []string{"user_id", "secret", "confirmed", "last_step", "created_at"}, f.Officers, progress("totp"),
		func(i int) ([]any, error) {
			return []any{FixtureUserID(i + 1), f.TOTPSecret, int64(1), int64(0), now}, nil
		})
	if err != nil {
		return err
	}
	var docs, versions []string
	for d, v := range f.Documents {
		docs, versions = append(docs, d), append(versions, v)
	}
	if len(docs) > 0 {
		err = s.bulk(ctx, "acceptances", []string{"user_id", "document", "version", "accepted_at", "client_addr"},
			f.Officers*len(docs), progress("acceptances"),
			func(i int) ([]any, error) {
				d := i % len(docs)
				return []any{FixtureUserID(i/len(docs) + 1), docs[d], versions[d], now, "192.0.2.1"}, nil
			})
		if err != nil {
			return err
		}
	}

	// Tokens: families of an access and a refresh token, a third of them a
	// service's (client_credentials: no subject), all live for 90 days so the
	// garbage collector leaves them be.
	expires := f.Now.Add(90 * 24 * time.Hour).UnixMicro()
	err = s.bulk(ctx, "oauth", strings.Split("kind, signature_hash, request_id, client_id, subject, session_id, active, access_signature_hash, requested_at, expires_at, data", ", "),
		f.Tokens, progress("oauth"),
		func(i int) ([]any, error) {
			family := i / 2
			req := fmt.Sprintf("fx-req-%09d", family)
			sub, sid := "", ""
			if f.Officers > 0 && family%3 != 0 {
				sub = FixtureUserID(family%f.Officers + 1)
				sid = hashKey(fmt.Sprintf("fx-session-%d", family%f.Officers))
			}
			kind, access := KindAccess, ""
			if i%2 == 1 {
				kind, access = KindRefresh, hashKey(fmt.Sprintf("fx-sig-%d", i-1))
			}
			data := fmt.Sprintf(fixtureTokenData, req, f.ClientID, sub, f.ClientID, sub)
			return []any{kind, hashKey(fmt.Sprintf("fx-sig-%d", i)), req, f.ClientID, sub, sid, int64(1), access,
				now - int64(f.Tokens-i)*1000, expires, []byte(data)}, nil
		})
	if err != nil {
		return err
	}
	return s.fixtureAudit(ctx, f, progress("audit"))
}

// fixtureAudit appends f.AuditEvents events spread over the year before
// f.Now, chained (AuditHash) after the newest event of the trail.
func (s *Store) fixtureAudit(ctx context.Context, f Fixture, progress func(done, total int)) error {
	if f.AuditEvents == 0 {
		return nil
	}
	if s.auditKey == nil {
		return fmt.Errorf("fixture audit events: %w", ErrNoAuditKey)
	}
	var prev string
	err := s.InTx(ctx, func(ctx context.Context) error {
		var err error
		prev, err = s.lockAuditHead(ctx)
		return err
	})
	if err != nil {
		return err
	}
	start := f.Now.Add(-365 * 24 * time.Hour)
	step := 365 * 24 * time.Hour / time.Duration(f.AuditEvents)
	kinds := []struct {
		event  Event
		detail string
	}{
		{EventTokenIssue, `{"grant":"client_credentials"}`},
		{EventTokenIssue, `{"grant":"authorization_code"}`},
		{EventTokenIssue, `{"grant":"refresh_token"}`},
		{EventSigninPassword, ``},
		{EventSigninSuccess, `{"amr":["pwd","otp","mfa"]}`},
		{EventSigninFailure, `{"factor":"password","reason":"wrong password"}`},
	}
	cols := strings.Split("at, event, user_id, username, client_id, client_addr, user_agent, detail, prev_hash, hash", ", ")
	return s.bulk(ctx, "audit", cols, f.AuditEvents, progress, func(i int) ([]any, error) {
		k := kinds[i%len(kinds)]
		ev := AuditEvent{At: truncUTC(start.Add(time.Duration(i) * step)), Event: k.event, ClientID: f.ClientID,
			ClientAddr: "192.0.2.1", UserAgent: "Mozilla/5.0 (fixture)"}
		if k.detail != "" {
			ev.Detail = []byte(k.detail)
		}
		if f.Officers > 0 && i%len(kinds) != 0 {
			n := i%f.Officers + 1
			ev.UserID, ev.Username = FixtureUserID(n), FixtureUsername(n)
		}
		ev.PrevHash = prev
		ev.Hash = s.AuditHash(prev, &ev)
		prev = ev.Hash
		return auditValues(&ev), nil
	})
}

// bulk inserts n rows made by row into table: COPY in one transaction on
// PostgreSQL, prepared INSERTs in transactions of fixtureChunk rows on
// SQLite. row is called in order, once per row.
func (s *Store) bulk(ctx context.Context, table string, cols []string, n int, progress func(done, total int),
	row func(i int) ([]any, error)) error {
	if n == 0 {
		return nil
	}
	if s.dialect == DialectPostgres {
		conn, err := s.db.Conn(ctx)
		if err != nil {
			return s.mapErr(err)
		}
		defer conn.Close()
		return s.mapErr(conn.Raw(func(dc any) error {
			pc := dc.(*stdlib.Conn).Conn()
			tx, err := pc.Begin(ctx)
			if err != nil {
				return err
			}
			defer tx.Rollback(context.WithoutCancel(ctx))
			i := 0
			_, err = tx.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromFunc(func() ([]any, error) {
				if i == n {
					return nil, nil
				}
				if i%fixtureChunk == 0 {
					progress(i, n)
				}
				v, err := row(i)
				i++
				return v, err
			}))
			if err != nil {
				return fmt.Errorf("fixture: copy into %s: %w", table, err)
			}
			if err := tx.Commit(ctx); err != nil {
				return err
			}
			progress(n, n)
			return nil
		}))
	}
	q := `INSERT INTO ` + table + ` (` + strings.Join(cols, ", ") + `) VALUES (?` + strings.Repeat(", ?", len(cols)-1) + `)`
	for lo := 0; lo < n; lo += fixtureChunk {
		progress(lo, n)
		err := s.InTx(ctx, func(ctx context.Context) error {
			st := txFrom(ctx, s).tx
			ps, err := st.PrepareContext(ctx, q)
			if err != nil {
				return err
			}
			defer ps.Close()
			for i := lo; i < min(n, lo+fixtureChunk); i++ {
				v, err := row(i)
				if err != nil {
					return err
				}
				if _, err := ps.ExecContext(ctx, v...); err != nil {
					return fmt.Errorf("fixture: insert into %s: %w", table, s.mapErr(err))
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	progress(n, n)
	return nil
}
