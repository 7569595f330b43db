package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

const userCols = `id, username, email, name, given_name, family_name, state, password_hash, password_initial,
	invite_expires_at, created_at, updated_at, last_sign_in_at`

func scanUser(sc interface{ Scan(...any) error }) (*User, error) {
	var u User
	var initial int64
	var invite, created, updated, last sql.NullInt64
	if err := sc.Scan(&u.ID, &u.Username, &u.Email, &u.Name, &u.GivenName, &u.FamilyName, &u.State, &u.PasswordHash, &initial,
		&invite, &created, &updated, &last); err != nil {
		return nil, err
	}
	u.PasswordInitial = initial != 0
	u.InviteExpiresAt = fromMicro(invite)
	u.CreatedAt = fromMicro(created)
	u.UpdatedAt = fromMicro(updated)
	u.LastSignInAt = fromMicro(last)
	return &u, nil
}

func validUserState(state string) bool {
	return state == UserInvited || state == UserActive || state == UserDisabled
}

func checkUser(u *User) error {
	switch {
	case u == nil:
		return invalid("user is nil")
	case u.ID == "":
		return invalid("user id is empty")
	case u.Username == "":
		return invalid("username is empty")
	case !validUserState(u.State):
		return invalid("unknown user state %q", u.State)
	}
	return nil
}

// CreateUser inserts a user. A zero CreatedAt/UpdatedAt is set to now (and
// written back into u). ErrConflict when the id or username exists.
func (s *Store) CreateUser(ctx context.Context, u *User) error {
	if err := checkUser(u); err != nil {
		return err
	}
	if u.CreatedAt.IsZero() {
		u.CreatedAt = s.now()
	}
	if u.UpdatedAt.IsZero() {
		u.UpdatedAt = u.CreatedAt
	}
	err := s.InTx(ctx, func(ctx context.Context) error {
		_, err := s.exec(ctx, `INSERT INTO users (`+userCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			u.ID, u.Username, u.Email, u.Name, u.GivenName, u.FamilyName, u.State, u.PasswordHash, boolInt(u.PasswordInitial),
			micro(u.InviteExpiresAt), micro(u.CreatedAt), micro(u.UpdatedAt), micro(u.LastSignInAt))
		if err != nil {
			return err
		}
		return s.indexUser(ctx, u)
	})
	if err != nil {
		return fmt.Errorf("create user %q: %w", u.Username, err)
	}
	return nil
}

// UserByID loads a user by id (the OIDC sub).
func (s *Store) UserByID(ctx context.Context, id string) (*User, error) {
	u, err := scanUser(s.queryRow(ctx, rd, `SELECT `+userCols+` FROM users WHERE id = ?`, id))
	if err != nil {
		return nil, s.notFound(err, "user %q", id)
	}
	return u, nil
}

// UserByUsername loads a user by canonical username (the caller canonicalises).
func (s *Store) UserByUsername(ctx context.Context, username string) (*User, error) {
	u, err := scanUser(s.queryRow(ctx, rd, `SELECT `+userCols+` FROM users WHERE username = ?`, username))
	if err != nil {
		return nil, s.notFound(err, "user %q", username)
	}
	return u, nil
}

// notFound maps sql.ErrNoRows to ErrNotFound and labels the error.
func (s *Store) notFound(err error, format string, args ...any) error {
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	return fmt.Errorf("load "+format+": %w", append(args, s.mapErr(err))...)
}

// UpdateUser writes every field but ID and CreatedAt. ErrNotFound when the
// user does not exist, ErrConflict when the new username is taken.
func (s *Store) UpdateUser(ctx context.Context, u *User) error {
	if err := checkUser(u); err != nil {
		return err
	}
	err := s.InTx(ctx, func(ctx context.Context) error {
		n, err := s.execN(ctx, `UPDATE users SET username = ?, email = ?, name = ?, given_name = ?, family_name = ?, state = ?,
		password_hash = ?, password_initial = ?, invite_expires_at = ?, updated_at = ?, last_sign_in_at = ? WHERE id = ?`,
			u.Username, u.Email, u.Name, u.GivenName, u.FamilyName, u.State, u.PasswordHash, boolInt(u.PasswordInitial),
			micro(u.InviteExpiresAt), micro(u.UpdatedAt), micro(u.LastSignInAt), u.ID)
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		return s.indexUser(ctx, u)
	})
	if err != nil {
		return fmt.Errorf("update user %q: %w", u.ID, err)
	}
	return nil
}

// ListUsers lists users ordered by username. state "" (or "locked", which
// flows decides from throttling) means every state; search keeps users whose
// username or name contains it, case-insensitively (Unicode-aware, the same
// on every backend because it is done here rather than in SQL).
func (s *Store) ListUsers(ctx context.Context, state, search string) ([]User, error) {
	q := `SELECT ` + userCols + ` FROM users`
	var args []any
	switch {
	case state == "" || state == "locked":
	case validUserState(state):
		q += ` WHERE state = ?`
		args = append(args, state)
	default:
		return nil, invalid("unknown user state %q", state)
	}
	q += ` ORDER BY username`
	rows, err := s.query(ctx, rd, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	needle := strings.ToLower(strings.TrimSpace(search))
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", s.mapErr(err))
		}
		if needle != "" && !strings.Contains(strings.ToLower(u.Username), needle) &&
			!strings.Contains(strings.ToLower(u.Name), needle) {
			continue
		}
		out = append(out, *u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", s.mapErr(err))
	}
	return out, nil
}

// ChangePassword replaces the password hash only if the stored one is still
// oldHash, so of two concurrent changes from the same password one wins and
// the other gets ErrConflict. ErrNotFound when the user does not exist.
func (s *Store) ChangePassword(ctx context.Context, id, oldHash, newHash string, initial bool) error {
	if newHash == "" {
		return invalid("new password hash is empty")
	}
	n, err := s.execN(ctx, `UPDATE users SET password_hash = ?, password_initial = ?, updated_at = ?
		WHERE id = ? AND password_hash = ?`,
		newHash, boolInt(initial), micro(s.now()), id, oldHash)
	if err != nil {
		return fmt.Errorf("change password of %q: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("change password of %q: %w", id, s.existsOr(ctx, "SELECT COUNT(*) FROM users WHERE id = ?", id))
	}
	return nil
}

// existsOr tells a lost conditional update (ErrConflict) from a missing row
// (ErrNotFound) after the update changed nothing.
func (s *Store) existsOr(ctx context.Context, countQuery string, args ...any) error {
	var n int64
	if err := s.row(ctx, wr, countQuery, args, &n); err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return ErrConflict
}

// DeleteUser deletes a user with their second factors and acceptances
// (cascade), deletes their sessions and deactivates their codes and tokens,
// in one transaction. The audit trail keeps its rows. ErrNotFound when absent.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	if id == "" {
		return invalid("user id is empty")
	}
	err := s.InTx(ctx, func(ctx context.Context) error {
		if err := s.RevokeOAuthBySubject(ctx, id); err != nil {
			return err
		}
		if _, err := s.exec(ctx, `DELETE FROM sessions WHERE user_id = ?`, id); err != nil {
			return err
		}
		n, err := s.execN(ctx, `DELETE FROM users WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete user %q: %w", id, err)
	}
	return nil
}
