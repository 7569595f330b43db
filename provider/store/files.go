package store

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
)

// The SQLite database holds password hashes, sealed keys and the audit
// trail: its file, its WAL and its shared-memory file belong to the service
// user alone (0600). A new database is created so; one found readable by
// others (an older Lanyard, a copy, a restore) is tightened at Open, with a
// warning. SQLite gives a WAL it creates the database file's mode.

// Private makes path (a file, or with a directory's mode a directory)
// accessible to its owner only: when its group or others have any access,
// it is set to perm (0600 or 0700) and a warning is logged. A missing path
// is left alone.
func Private(path string, perm fs.FileMode, log *slog.Logger) error {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Mode().Perm()&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(path, perm); err != nil {
		return fmt.Errorf("make %s private: %w", path, err)
	}
	if log == nil {
		log = slog.Default()
	}
	log.Warn("file was readable by other users: made private", "path", path,
		"was", fmt.Sprintf("%#o", st.Mode().Perm()), "now", fmt.Sprintf("%#o", perm))
	return nil
}

// privateSQLite creates the database file 0600 when it does not exist yet
// (SQLite would create it with the umask's mode) and makes the database and
// its -wal and -shm files private.
func privateSQLite(path string, log *slog.Logger) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("store: open %s: %w", path, err)
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := Private(p, 0o600, log); err != nil {
			return fmt.Errorf("store: %w", err)
		}
	}
	return nil
}
