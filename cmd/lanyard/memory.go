package main

import (
	"runtime/debug"

	"github.com/lanyard-idp/lanyard/flows/password"
)

// The serve process's memory. Its largest allocations by far are argon2id's
// working buffers: 19 MiB for each password hashed, garbage as soon as the
// hash is done, at most one per worker of the hashing pool at a time. With
// Go's defaults the heap grows to twice what is live between collections, so
// those buffers would double the footprint of a sign-in burst. Unless the
// operator sets GOGC or GOMEMLIMIT, serve collects at half again what is live
// (GOGC=50: the live heap is small, and the buffers hold no pointers, so a
// collection is cheap) and keeps a soft limit sized for the pool.
const (
	serveGCPercent  = 50
	memoryBaseBytes = 48 << 20 // the process at rest and its requests
	memoryPerWorker = 20 << 20 // one argon2id buffer (19 MiB) and its share of the slack
)

// tuneMemory applies the defaults above where the environment does not set
// its own, and returns what it set (0: left alone), for the start-up log.
func tuneMemory(getenv func(string) string) (gcPercent int, limit int64) {
	if getenv("GOGC") == "" {
		gcPercent = serveGCPercent
		debug.SetGCPercent(gcPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		limit = memoryBaseBytes + int64(password.Stats().Workers)*memoryPerWorker
		debug.SetMemoryLimit(limit)
	}
	return gcPercent, limit
}
