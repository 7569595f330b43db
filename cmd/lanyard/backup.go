package main

// lanyard backup and restore, for the SQLite database. A backup is VACUUM
// INTO: a consistent copy taken while the server runs. A restore puts a copy
// back: it refuses anything that is not a Lanyard database and a database a
// running server holds, moves the current database aside (never deletes it)
// and renames the copy into place, so a crash leaves the old database or the
// new one, never half of either.
//
// PostgreSQL deployments back up with pg_dump and restore with pg_restore.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/lanyard-idp/lanyard/provider/store"
)

const pgBackupHint = "this deployment uses PostgreSQL: back it up with pg_dump and restore with pg_restore (see \"Backup and restore\" in the README)"

func cmdBackup(ctx context.Context, args []string, e env) error {
	cmd := newCommand("backup FILE [--config FILE | --dev] [--json]", e)
	pos, err := cmd.parse(args, e, 1, 1)
	if err != nil {
		return err
	}
	target, err := filepath.Abs(pos[0])
	if err != nil {
		return usagef("backup file %q: %v", truncate(pos[0], 100), err)
	}
	if _, err := os.Lstat(target); err == nil {
		return fmt.Errorf("%s already exists: a backup never overwrites a file; choose a new name", target)
	}
	if fi, err := os.Stat(filepath.Dir(target)); err != nil || !fi.IsDir() {
		return fmt.Errorf("the folder %s does not exist", filepath.Dir(target))
	}
	cfg, err := cmd.c.load(e)
	if err != nil {
		return err
	}
	if isPostgres(databaseURL(cfg, e)) {
		return errors.New(pgBackupHint)
	}
	_, st, err := cmd.openStore(ctx, e)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Backup(ctx, target); err != nil {
		return err
	}
	versions, err := inspectDatabase(ctx, target)
	if err != nil {
		os.Remove(target)
		return fmt.Errorf("the backup did not check out and was removed: %w", err)
	}
	fi, err := os.Stat(target)
	if err != nil {
		return err
	}
	if err := adminEvent(ctx, st, store.EventBackup, nil, map[string]any{"file": target, "bytes": fi.Size()}); err != nil {
		return fmt.Errorf("the backup is written to %s, but its audit event was not: %w", target, err)
	}
	if cmd.json {
		return writeJSON(e.stdout, map[string]any{"file": target, "bytes": fi.Size(), "schema": versions[len(versions)-1]})
	}
	fmt.Fprintf(e.stdout, "backup written to %s (%d bytes, schema %s)\n", target, fi.Size(), versions[len(versions)-1])
	fmt.Fprintln(e.stdout, "it holds password hashes and sealed keys: store it as carefully as the key-encryption key, and apart from it")
	return nil
}

func cmdRestore(ctx context.Context, args []string, e env) error {
	cmd := newCommand("restore FILE [--config FILE | --dev] [--json]", e)
	pos, err := cmd.parse(args, e, 1, 1)
	if err != nil {
		return err
	}
	src, err := filepath.Abs(pos[0])
	if err != nil {
		return usagef("backup file %q: %v", truncate(pos[0], 100), err)
	}
	cfg, err := cmd.c.load(e)
	if err != nil {
		return err
	}
	url := databaseURL(cfg, e)
	if isPostgres(url) {
		return errors.New(pgBackupHint)
	}
	dst, err := filepath.Abs(sqliteFile(url))
	if err != nil {
		return err
	}
	if src == dst {
		return usagef("%s is the live database itself: name a backup file", src)
	}
	if _, err := inspectDatabase(ctx, src); err != nil {
		return fmt.Errorf("%s cannot be restored: %w", src, err)
	}
	// The restored trail is keyed under the key-encryption key: without it,
	// nothing is moved.
	box, err := keyBox(cfg, e, false)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	// Held until the end: a server starting meanwhile waits for nothing and
	// fails (it takes this lock shared, non-blocking).
	release, err := lockExclusive(dst)
	if err != nil {
		return err
	}
	defer release()

	aside, err := swapIn(src, dst, e.now().Format("20060102T150405Z"))
	if err != nil {
		return err
	}
	// Bring the schema up to this binary's version and record the restore in
	// the restored trail (keyed: the deployment's key-encryption key).
	st, err := store.Open(ctx, dst, store.OpenOptions{AuditKey: box.Derive(store.AuditKeyPurpose), Logger: newLogger(cfg, e.stderr)})
	if err != nil {
		return fmt.Errorf("the backup is in place at %s, but it does not open: %w", dst, err)
	}
	defer st.Close()
	if err := adminEvent(ctx, st, store.EventRestore, nil, map[string]any{"from": src, "previous": aside}); err != nil {
		return fmt.Errorf("the backup is in place, but its audit event was not written: %w", err)
	}
	if cmd.json {
		return writeJSON(e.stdout, map[string]any{"restored": dst, "from": src, "previous": aside})
	}
	fmt.Fprintf(e.stdout, "restored %s from %s\n", dst, src)
	if aside != "" {
		fmt.Fprintf(e.stdout, "the previous database is kept at %s\n", aside)
	}
	fmt.Fprintln(e.stdout, "start the server with the same key-encryption key as when the backup was taken")
	return nil
}

// swapIn copies src next to dst, moves dst (and its -wal and -shm files)
// aside under the suffix, and renames the copy into place. It returns where
// the old database went ("" when there was none). On failure the old
// database is put back.
func swapIn(src, dst, suffix string) (string, error) {
	tmp := dst + ".restore-tmp"
	os.Remove(tmp) // a leftover of an interrupted restore
	if err := copyFile(src, tmp); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("copy the backup: %w", err)
	}
	aside := dst + ".before-restore-" + suffix
	var moved []string
	if _, err := os.Stat(dst); err == nil {
		// The WAL holds committed changes not yet in the main file: it goes
		// aside with it, or the old database would lose them.
		for _, ext := range []string{"", "-wal", "-shm"} {
			if _, err := os.Stat(dst + ext); errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err := os.Rename(dst+ext, aside+ext); err != nil {
				for _, m := range moved {
					os.Rename(aside+m, dst+m)
				}
				os.Remove(tmp)
				return "", fmt.Errorf("move the current database aside: %w", err)
			}
			moved = append(moved, ext)
		}
	} else {
		aside = ""
	}
	if err := os.Rename(tmp, dst); err != nil {
		for _, m := range moved {
			os.Rename(aside+m, dst+m)
		}
		os.Remove(tmp)
		return "", fmt.Errorf("put the backup in place: %w", err)
	}
	syncDir(filepath.Dir(dst))
	return aside, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// syncDir makes renames in dir durable.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// inspectDatabase checks that path is a whole Lanyard SQLite database this
// binary can run (store.InspectSQLiteFile) and returns its applied
// migrations, oldest first.
func inspectDatabase(ctx context.Context, path string) ([]string, error) {
	return store.InspectSQLiteFile(ctx, path)
}
