package store_test

import (
	"bytes"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanyard-idp/lanyard/provider/store"
	"github.com/lanyard-idp/lanyard/provider/store/storetest"
)

func mode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

// TestSQLiteFilesArePrivate: a new database, its WAL and its shared-memory
// file are 0600 whatever the umask allows; files found readable by others
// are made private at Open, with a warning naming each.
func TestSQLiteFilesArePrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lanyard.db")
	s, err := store.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(t.Context(), &store.User{ID: "u1", Username: "a@agency.example", State: store.UserInvited, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if m := mode(t, p); m != 0o600 {
			t.Errorf("%s created %#o, want 0600", filepath.Base(p), m)
		}
	}
	s.Close()

	// An older Lanyard (or a restore) left them world-readable.
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o644); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	var logs bytes.Buffer
	s, err = store.Open(t.Context(), path, store.OpenOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if m := mode(t, path); m != 0o600 {
		t.Errorf("database left %#o", m)
	}
	for _, p := range []string{path + "-wal", path + "-shm"} {
		if _, err := os.Stat(p); err == nil && mode(t, p) != 0o600 {
			t.Errorf("%s left %#o", filepath.Base(p), mode(t, p))
		}
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "path="+path+" ") || !strings.Contains(logs.String(), "was=0644") {
		t.Errorf("no warning naming the database: %s", logs.String())
	}
}

// TestAuditNeedsItsKey: without the audit key nothing is appended to the
// chain and nothing is checked; under another deployment's key the chain
// does not check from its first event.
func TestAuditNeedsItsKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lanyard.db")
	s, err := store.Open(t.Context(), path, store.OpenOptions{AuditKey: storetest.AuditKey})
	if err != nil {
		t.Fatal(err)
	}
	first := &store.AuditEvent{Event: store.EventInvite}
	if err := s.AppendAudit(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = store.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(t.Context(), &store.AuditEvent{Event: store.EventInvite}); !errors.Is(err, store.ErrNoAuditKey) {
		t.Errorf("append without the key: %v, want ErrNoAuditKey", err)
	}
	if _, err := s.CheckAudit(t.Context()); !errors.Is(err, store.ErrNoAuditKey) {
		t.Errorf("check without the key: %v, want ErrNoAuditKey", err)
	}
	if n, _ := s.LastAuditID(t.Context()); n != first.ID {
		t.Errorf("last event #%d, want #%d: something was appended without the key", n, first.ID)
	}
	s.Close()

	s, err = store.Open(t.Context(), path, store.OpenOptions{AuditKey: []byte("another deployment's key, 32 b..")})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := s.CheckAudit(t.Context()); err != nil || c.BadID != first.ID {
		t.Errorf("under another key: %+v, %v; want broken at #%d", c, err, first.ID)
	}

	// The upgrade that keys a trail needs the key: without it, it is not
	// applied (and nothing else is written).
	if _, err := s.DB().ExecContext(t.Context(), `DELETE FROM schema_migrations WHERE version = '0008_audit_keyed'`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := store.Open(t.Context(), path); !errors.Is(err, store.ErrNoAuditKey) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("upgrading a trail without the key: %v, want ErrNoAuditKey", err)
	}
}
