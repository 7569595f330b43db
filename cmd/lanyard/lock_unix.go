//go:build unix

package main

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// The serve lock keeps `lanyard restore` from replacing a SQLite database
// under a running server: every server holds a shared flock on <db>.lock
// while it runs, and restore needs it exclusively. flock locks die with their
// process, so a crashed server leaves nothing to clean up.

func lockFile(db string, how int) (func(), error) {
	f, err := os.OpenFile(db+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the database lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errLocked
		}
		return nil, fmt.Errorf("lock the database: %w", err)
	}
	return func() { f.Close() }, nil
}

var errLocked = errors.New("locked")

// lockShared is taken by serve for as long as it runs.
func lockShared(db string) (func(), error) {
	release, err := lockFile(db, syscall.LOCK_SH)
	if errors.Is(err, errLocked) {
		return nil, fmt.Errorf("%s is being restored (lanyard restore holds it): wait for it to finish", db)
	}
	return release, err
}

// lockExclusive is taken by restore.
func lockExclusive(db string) (func(), error) {
	release, err := lockFile(db, syscall.LOCK_EX)
	if errors.Is(err, errLocked) {
		return nil, fmt.Errorf("a Lanyard server is running on %s: stop it first (systemctl stop lanyard), then restore", db)
	}
	return release, err
}
