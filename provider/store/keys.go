package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// AddSigningKey stores a new signing key (Private sealed by the caller). A
// zero CreatedAt is set to now. ErrConflict when the kid exists.
func (s *Store) AddSigningKey(ctx context.Context, k *SigningKey) error {
	switch {
	case k == nil || k.KID == "":
		return invalid("signing key without kid")
	case k.Alg == "":
		return invalid("signing key without alg")
	case len(k.Private) == 0:
		return invalid("signing key without private key")
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = s.now()
	}
	_, err := s.exec(ctx, `INSERT INTO signing_keys (kid, alg, private, created_at, retired_at) VALUES (?, ?, ?, ?, ?)`,
		k.KID, k.Alg, k.Private, micro(k.CreatedAt), micro(k.RetiredAt))
	if err != nil {
		return fmt.Errorf("add signing key %q: %w", k.KID, err)
	}
	return nil
}

// SigningKeys lists every key, newest first, retired ones included.
func (s *Store) SigningKeys(ctx context.Context) ([]SigningKey, error) {
	rows, err := s.query(ctx, rd, `SELECT kid, alg, private, created_at, retired_at FROM signing_keys
		ORDER BY created_at DESC, kid`)
	if err != nil {
		return nil, fmt.Errorf("load signing keys: %w", err)
	}
	defer rows.Close()
	var out []SigningKey
	for rows.Next() {
		var k SigningKey
		var created, retired sql.NullInt64
		if err := rows.Scan(&k.KID, &k.Alg, &k.Private, &created, &retired); err != nil {
			return nil, fmt.Errorf("load signing keys: %w", s.mapErr(err))
		}
		k.CreatedAt, k.RetiredAt = fromMicro(created), fromMicro(retired)
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load signing keys: %w", s.mapErr(err))
	}
	return out, nil
}

// RetireSigningKeys retires, at the given time, every current key but except;
// keys retired earlier keep their time.
func (s *Store) RetireSigningKeys(ctx context.Context, except string, at time.Time) error {
	if at.IsZero() {
		return invalid("retirement time is zero")
	}
	if _, err := s.exec(ctx, `UPDATE signing_keys SET retired_at = ? WHERE kid <> ? AND retired_at IS NULL`,
		at.UnixMicro(), except); err != nil {
		return fmt.Errorf("retire signing keys: %w", err)
	}
	return nil
}

// DeleteRetiredSigningKeys deletes the keys retired before the given time.
func (s *Store) DeleteRetiredSigningKeys(ctx context.Context, before time.Time) error {
	if _, err := s.exec(ctx, `DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at < ?`,
		before.UnixMicro()); err != nil {
		return fmt.Errorf("delete retired signing keys: %w", err)
	}
	return nil
}

// GetSecret returns a named deployment secret (cookie keys...), as stored.
func (s *Store) GetSecret(ctx context.Context, name string) ([]byte, error) {
	var v []byte
	if err := s.row(ctx, rd, `SELECT value FROM secrets WHERE name = ?`, []any{name}, &v); err != nil {
		return nil, fmt.Errorf("load secret %q: %w", name, err)
	}
	return v, nil
}

// PutSecretIfAbsent stores value under name unless a value is there already,
// and returns the stored value: of nodes starting together, the first writer
// wins and every node uses its value.
func (s *Store) PutSecretIfAbsent(ctx context.Context, name string, value []byte) ([]byte, error) {
	if name == "" {
		return nil, invalid("secret name is empty")
	}
	if len(value) == 0 {
		return nil, invalid("secret value is empty")
	}
	if _, err := s.exec(ctx, `INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`,
		name, value); err != nil {
		return nil, fmt.Errorf("store secret %q: %w", name, err)
	}
	// w, not r: inside a transaction the row is visible to it alone.
	var v []byte
	if err := s.row(ctx, wr, `SELECT value FROM secrets WHERE name = ?`, []any{name}, &v); err != nil {
		return nil, fmt.Errorf("load secret %q: %w", name, err)
	}
	return v, nil
}

// keyLockID serializes signing-key creation and rotation on PostgreSQL.
const keyLockID = 0x6b657973 // "keys"

// LockSigningKeys serializes the transactions that check for and add signing
// keys, so nodes starting together on an empty database agree on one key per
// algorithm instead of each adding its own. Call it first inside the
// transaction. PostgreSQL takes an advisory transaction lock; SQLite's
// immediate transaction already excludes every other writer.
func (s *Store) LockSigningKeys(ctx context.Context) error {
	if txFrom(ctx, s) == nil {
		return invalid("LockSigningKeys outside a transaction")
	}
	if s.dialect != DialectPostgres {
		return nil
	}
	_, err := s.exec(ctx, fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", keyLockID))
	return err
}
