package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// The console's officer list: a page at a time, in username order, by state
// or by a search of names and addresses — indexed queries only, so a page
// costs the same with a hundred officers or a hundred thousand.
//
// A search matches officers with, for every word typed, a term that starts
// with it: a word of the name, a word of the address's local part, or the
// whole address (a word with an "@" is matched against the address only).
// The terms live in user_search, written with the user (CreateUser,
// UpdateUser) and deleted with it.

// UserQuery selects a page of officers. Zero fields match everything.
type UserQuery struct {
	// State is UserInvited, UserActive or UserDisabled; "" is any.
	State string
	// InviteExpiredAt, when set, keeps invited accounts whose initial
	// password expired at or before it (State is then UserInvited).
	InviteExpiredAt time.Time
	// Search is what the admin typed (see SearchWords).
	Search string
	// After is the username the previous page ended with.
	After string
	// Limit bounds the page (default and maximum 500).
	Limit int
}

// maxUserPage bounds a page of ListUsersPage.
const maxUserPage = 500

// maxSearchWords bounds the words of a search: each is a probe of the index.
const maxSearchWords = 4

// ListUsersPage returns up to q.Limit users after q.After, by username.
func (s *Store) ListUsersPage(ctx context.Context, q UserQuery) ([]User, error) {
	if q.State != "" && !validUserState(q.State) {
		return nil, invalid("unknown user state %q", q.State)
	}
	if !q.InviteExpiredAt.IsZero() {
		q.State = UserInvited
	}
	if q.Limit <= 0 || q.Limit > maxUserPage {
		q.Limit = maxUserPage
	}
	words := SearchWords(q.Search)
	var (
		sqlText string
		args    []any
	)
	if len(words) == 0 {
		var where []string
		if q.State != "" {
			where, args = append(where, "state = ?"), append(args, q.State)
		}
		if !q.InviteExpiredAt.IsZero() {
			where = append(where, "password_initial = 1", "invite_expires_at IS NOT NULL", "invite_expires_at <= ?")
			args = append(args, q.InviteExpiredAt.UnixMicro())
		}
		where, args = append(where, "username > ?"), append(args, q.After)
		sqlText = `SELECT ` + userCols + ` FROM users WHERE ` + strings.Join(where, " AND ") + ` ORDER BY username LIMIT ?`
		args = append(args, int64(q.Limit))
		return s.scanUsers(ctx, sqlText, args...)
	}
	// How many terms each word starts (counted up to walkFromAll: an
	// index range, cheap) decides the plan. The rarest word drives: its
	// terms are read in the index and each officer checked for the other
	// words. When even the rarest is common (more than walkFrom terms), the
	// officers are read in username order instead, each checked for every
	// word: a page is then found within a few thousand rows either way.
	counts := make([]int, len(words))
	for i, w := range words {
		lo, hi := prefixRange(w)
		if err := s.row(ctx, rd, `SELECT COUNT(*) FROM (SELECT 1 FROM user_search WHERE term >= ? AND term < ? LIMIT ?) x`,
			[]any{lo, hi, walkFromAll + 1}, &counts[i]); err != nil {
			return nil, fmt.Errorf("search users: %w", err)
		}
		if counts[i] == 0 {
			return nil, nil
		}
	}
	rarest := 0
	for i := range words {
		if counts[i] < counts[rarest] {
			rarest = i
		}
	}
	rare := counts[rarest]
	words[0], words[rarest] = words[rarest], words[0]
	var where []string
	if len(words) == 1 && rare > walkFrom || rare > walkFromAll {
		where, args = []string{"u.username > ?"}, []any{q.After}
		for _, w := range words {
			lo, hi := prefixRange(w)
			where = append(where, "EXISTS (SELECT 1 FROM user_search w WHERE w.username = u.username AND w.term >= ? AND w.term < ?)")
			args = append(args, lo, hi)
		}
		if q.State != "" {
			where, args = append(where, "u.state = ?"), append(args, q.State)
		}
		if !q.InviteExpiredAt.IsZero() {
			where = append(where, "u.password_initial = 1", "u.invite_expires_at IS NOT NULL", "u.invite_expires_at <= ?")
			args = append(args, q.InviteExpiredAt.UnixMicro())
		}
		sqlText = `SELECT ` + userCols + ` FROM users u WHERE ` + strings.Join(where, " AND ") + ` ORDER BY u.username LIMIT ?`
		return s.scanUsers(ctx, sqlText, append(args, int64(q.Limit))...)
	}
	lo, hi := prefixRange(words[0])
	where = []string{"t.term >= ?", "t.term < ?", "t.username > ?"}
	args = []any{lo, hi, q.After}
	// PostgreSQL would otherwise hash every row of the other conditions
	// (a semi-join): OFFSET 0 keeps each a probe of an index.
	probe := ""
	if s.dialect == DialectPostgres {
		probe = " OFFSET 0"
	}
	for _, w := range words[1:] {
		lo, hi := prefixRange(w)
		where = append(where, "EXISTS (SELECT 1 FROM user_search w WHERE w.username = t.username AND w.term >= ? AND w.term < ?"+probe+")")
		args = append(args, lo, hi)
	}
	if q.State != "" {
		where = append(where, "EXISTS (SELECT 1 FROM users u WHERE u.username = t.username AND u.state = ?"+probe+")")
		args = append(args, q.State)
	}
	if !q.InviteExpiredAt.IsZero() {
		where = append(where, "EXISTS (SELECT 1 FROM users u WHERE u.username = t.username AND u.password_initial = 1 AND u.invite_expires_at IS NOT NULL AND u.invite_expires_at <= ?"+probe+")")
		args = append(args, q.InviteExpiredAt.UnixMicro())
	}
	rows, err := s.query(ctx, rd, `SELECT DISTINCT t.username FROM user_search t WHERE `+strings.Join(where, " AND ")+
		` ORDER BY t.username LIMIT ?`, append(args, int64(q.Limit))...)
	if err != nil {
		return nil, fmt.Errorf("search users: %w", err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("search users: %w", s.mapErr(err))
		}
		names = append(names, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search users: %w", s.mapErr(err))
	}
	out := make([]User, 0, len(names))
	for _, n := range names {
		u, err := s.UserByUsername(ctx, n)
		if err != nil {
			return nil, fmt.Errorf("search users: %w", err)
		}
		out = append(out, *u)
	}
	return out, nil
}

// How many terms a search's rarest word may start before the search reads
// the officers in username order rather than the terms (ListUsersPage):
// reading the terms costs about their number, walking the officers about
// the number read before a page is full. walkFromAll is for several words,
// whose officers are rarer than any one word's.
const (
	walkFrom    = 1000
	walkFromAll = 5000
)

func (s *Store) scanUsers(ctx context.Context, q string, args ...any) ([]User, error) {
	rows, err := s.query(ctx, rd, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", s.mapErr(err))
		}
		out = append(out, *u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", s.mapErr(err))
	}
	return out, nil
}

// prefixRange is the range of terms starting with w: [w, w+U+10FFFF).
// Terms compare byte by byte (SQLite's default, PostgreSQL's COLLATE "C"),
// so nothing that starts with w sorts past the upper bound.
func prefixRange(w string) (lo, hi string) { return w, w + "\U0010FFFF" }

// SearchWords is how a search is read: normalised (NFKC, lower case,
// accents dropped), at most four words; a word with an "@" stays whole (it is matched against addresses),
// others are split at anything that is not a letter or a digit, as the
// terms are.
func SearchWords(search string) []string {
	var out []string
	for _, f := range strings.Fields(normalise(search)) {
		if strings.Contains(f, "@") {
			out = append(out, addressTerm(f))
		} else {
			out = append(out, splitWords(f)...)
		}
	}
	slices.Sort(out)
	out = slices.Compact(out)
	// The longest words are kept: they say the most.
	slices.SortStableFunc(out, func(a, b string) int { return len(b) - len(a) })
	if len(out) > maxSearchWords {
		out = out[:maxSearchWords]
	}
	return out
}

// normalise is how terms and searches compare: NFKC, lower case, and
// without accents (NFKD minus the combining marks), so "martin" finds
// "Martín" and "angela" finds "Ängela".
func normalise(s string) string {
	d := norm.NFKD.String(strings.ToLower(norm.NFKC.String(s)))
	return norm.NFC.String(strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Mn, r) {
			return -1
		}
		return r
	}, d))
}

func splitWords(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

// maxTermBytes bounds a stored term (an address is at most 254 bytes).
const maxTermBytes = 256

// addressTerm is how a whole address is stored among the terms: after an
// "@", so that no word (split at anything but letters and digits) ever
// starts one, and a word of the name counts each officer once.
func addressTerm(address string) string { return "@" + address }

// searchTerms are the terms a user is found by.
func searchTerms(username, name string) []string {
	address := normalise(username)
	terms := []string{addressTerm(address)}
	local, _, _ := strings.Cut(address, "@")
	terms = append(terms, splitWords(local)...)
	terms = append(terms, splitWords(normalise(name))...)
	for i, t := range terms {
		if len(t) > maxTermBytes {
			terms[i] = strings.ToValidUTF8(t[:maxTermBytes], "")
		}
	}
	slices.Sort(terms)
	return slices.Compact(terms)
}

// indexUser brings the user's search terms in step with u, in ctx's
// transaction: a read when nothing changed (a sign-in updating its time),
// otherwise the difference is written. The rows follow a change of
// username by themselves (ON UPDATE CASCADE).
func (s *Store) indexUser(ctx context.Context, u *User) error {
	want := searchTerms(u.Username, u.Name)
	rows, err := s.query(ctx, wr, `SELECT term FROM user_search WHERE username = ?`, u.Username)
	if err != nil {
		return err
	}
	var have []string
	for rows.Next() {
		var term string
		if err := rows.Scan(&term); err != nil {
			rows.Close()
			return s.mapErr(err)
		}
		have = append(have, term)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return s.mapErr(err)
	}
	for _, t := range have {
		if !slices.Contains(want, t) {
			if _, err := s.exec(ctx, `DELETE FROM user_search WHERE username = ? AND term = ?`, u.Username, t); err != nil {
				return err
			}
		}
	}
	for _, t := range want {
		if !slices.Contains(have, t) {
			if _, err := s.exec(ctx, `INSERT INTO user_search (username, term) VALUES (?, ?)`, u.Username, t); err != nil {
				return err
			}
		}
	}
	return nil
}

// backfillUserSearch writes the terms of the users that existed before
// user_search did (migration 0006's Go half, in its transaction).
func backfillUserSearch(ctx context.Context, s *Store, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT username, name FROM users`)
	if err != nil {
		return err
	}
	type who struct{ username, name string }
	var all []who
	for rows.Next() {
		var w who
		if err := rows.Scan(&w.username, &w.name); err != nil {
			rows.Close()
			return err
		}
		all = append(all, w)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	ins := s.sq(`INSERT INTO user_search (username, term) VALUES (?, ?)`)
	for _, w := range all {
		for _, t := range searchTerms(w.username, w.name) {
			if _, err := tx.ExecContext(ctx, ins, w.username, t); err != nil {
				return err
			}
		}
	}
	return nil
}

// LockedKeys returns the throttle keys starting with prefix that are locked
// at now, with when each lock ends.
func (s *Store) LockedKeys(ctx context.Context, prefix string, now time.Time) (map[string]time.Time, error) {
	rows, err := s.query(ctx, rd, `SELECT key_name, locked_until FROM throttle
		WHERE locked_until IS NOT NULL AND locked_until > ?`, now.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("locked keys: %w", err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var k string
		var until sql.NullInt64
		if err := rows.Scan(&k, &until); err != nil {
			return nil, fmt.Errorf("locked keys: %w", s.mapErr(err))
		}
		if strings.HasPrefix(k, prefix) {
			out[k] = fromMicro(until)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("locked keys: %w", s.mapErr(err))
	}
	return out, nil
}

// Matches reports whether the user with username and name is found by
// words (SearchWords), as ListUsersPage finds them.
func Matches(username, name string, words []string) bool {
	terms := searchTerms(username, name)
	for _, w := range words {
		if !slices.ContainsFunc(terms, func(t string) bool { return strings.HasPrefix(t, w) }) {
			return false
		}
	}
	return true
}
