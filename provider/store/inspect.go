package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"
)

// InspectSQLiteFile checks that path is a whole Lanyard SQLite database this
// binary can run: the SQLite header, no write-ahead log beside it (that would
// be a live database copied by hand, missing its last changes), an intact
// file, and schema_migrations listing only migrations this binary knows. It
// opens the file read-only: nothing is written. It returns the applied
// migration versions, oldest first.
func InspectSQLiteFile(ctx context.Context, path string) ([]string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	head := make([]byte, 16)
	_, err = io.ReadFull(f, head)
	f.Close()
	if err != nil || !bytes.Equal(head, []byte("SQLite format 3\x00")) {
		return nil, errors.New("it is not a SQLite database")
	}
	if wal, err := os.Stat(path + "-wal"); err == nil && wal.Size() > 0 {
		return nil, errors.New("a write-ahead log (-wal) lies beside it: it is a live database copied by hand, not a backup; take one with lanyard backup")
	}
	// Read-only and immutable: SQLite neither writes nor creates -wal/-shm.
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	uri := &url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: "mode=ro&immutable=1"}
	db, err := sql.Open("sqlite", uri.String())
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var check string
	if err := db.QueryRowContext(ctx, "PRAGMA quick_check").Scan(&check); err != nil {
		return nil, fmt.Errorf("it cannot be read as a database: %w", err)
	}
	if check != "ok" {
		return nil, fmt.Errorf("it is damaged: %s", clip(check, 200))
	}
	rows, err := db.QueryContext(ctx, "SELECT version FROM schema_migrations ORDER BY version")
	if err != nil {
		return nil, errors.New("it is not a Lanyard database (it has no schema_migrations table)")
	}
	defer rows.Close()
	var versions []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		versions = append(versions, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(versions) == 0 {
		return nil, errors.New("it is not a Lanyard database (no migration was ever applied to it)")
	}
	names, err := MigrationNames(DialectSQLite)
	if err != nil {
		return nil, err
	}
	known := make([]string, len(names))
	for i, n := range names {
		known[i] = strings.TrimSuffix(n, ".sql")
	}
	for _, v := range versions {
		if !slices.Contains(known, v) {
			return nil, fmt.Errorf("it was written by a newer Lanyard (migration %s is unknown to this binary): upgrade first", clip(v, 60))
		}
	}
	return versions, nil
}

// clip shortens s for an error message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
