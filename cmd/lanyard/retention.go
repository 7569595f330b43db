package main

// lanyard audit export / prune, and verify --archive: the audit trail's
// retention. Events older than the retention go to an archive file (JSON
// lines, one event each, with the hashes that chain them), then out of the
// database; the trail verifies from the last pruned event (the anchor), and
// the archives verify up to it, so together they are still one chain.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/provider/store"
)

const evAuditPrune = store.EventAuditPrune

// archiveLine is one event in an archive. The text fields are what the
// database holds; a field JSON text cannot carry byte for byte (not UTF-8, a
// detail that is not compact JSON) is in Raw instead, base64, so the hash can
// always be recomputed from the file alone.
type archiveLine struct {
	auditLine                   // as `audit --json` prints an event
	Raw       map[string][]byte `json:"raw,omitempty"`
	PrevHash  string            `json:"prev_hash"`
}

func toArchive(e *store.AuditEvent) archiveLine {
	l := archiveLine{auditLine: auditLine{ID: e.ID, At: e.At.UTC().Format(time.RFC3339Nano), Hash: e.Hash}, PrevHash: e.PrevHash}
	for _, f := range []struct {
		name string
		v    string
		dst  *string
	}{
		{"event", string(e.Event), &l.Event}, {"user_id", e.UserID, &l.UserID}, {"username", e.Username, &l.Username},
		{"client_id", e.ClientID, &l.ClientID}, {"client_addr", e.ClientAddr, &l.ClientAddr}, {"user_agent", e.UserAgent, &l.UserAgent},
	} {
		if utf8.ValidString(f.v) {
			*f.dst = f.v
			continue
		}
		if l.Raw == nil {
			l.Raw = map[string][]byte{}
		}
		l.Raw[f.name] = []byte(f.v)
	}
	if len(e.Detail) > 0 {
		var c bytes.Buffer
		if utf8.Valid(e.Detail) && json.Compact(&c, e.Detail) == nil && bytes.Equal(c.Bytes(), e.Detail) {
			l.Detail = e.Detail
		} else {
			if l.Raw == nil {
				l.Raw = map[string][]byte{}
			}
			l.Raw["detail"] = e.Detail
		}
	}
	return l
}

func (l archiveLine) event() (store.AuditEvent, error) {
	at, err := time.Parse(time.RFC3339Nano, l.At)
	if err != nil {
		return store.AuditEvent{}, fmt.Errorf("event #%d: bad time %q", l.ID, l.At)
	}
	e := store.AuditEvent{ID: l.ID, At: at.UTC(), Event: store.Event(l.Event), UserID: l.UserID, Username: l.Username,
		ClientID: l.ClientID, ClientAddr: l.ClientAddr, UserAgent: l.UserAgent, Detail: []byte(l.Detail),
		PrevHash: l.PrevHash, Hash: l.Hash}
	for k, v := range l.Raw {
		switch k {
		case "event":
			e.Event = store.Event(v)
		case "user_id":
			e.UserID = string(v)
		case "username":
			e.Username = string(v)
		case "client_id":
			e.ClientID = string(v)
		case "client_addr":
			e.ClientAddr = string(v)
		case "user_agent":
			e.UserAgent = string(v)
		case "detail":
			e.Detail = v
		default:
			return store.AuditEvent{}, fmt.Errorf("event #%d: unknown raw field %q", l.ID, k)
		}
	}
	return e, nil
}

// archiveSummary is what an archive holds: events First..Last, chained from
// Prev (the hash of the event before First; "" for the trail's beginning)
// to Head.
type archiveSummary struct {
	File    string `json:"file"`
	Events  int64  `json:"events"`
	First   int64  `json:"first_id"`
	Last    int64  `json:"last_id"`
	Prev    string `json:"prev_hash"`
	Head    string `json:"head_hash"`
	FirstAt string `json:"first_at,omitempty"`
	LastAt  string `json:"last_at,omitempty"`
}

// errNotContinuing: an archive does not start where the one before ended.
var errNotContinuing = errors.New("the archive does not continue the one before")

// readArchive verifies an archive file: every line an event, every event's
// hash right and chained to the line before (store.AuditChain: keyed, or an
// older Lanyard's unkeyed events before the upgrade). c carries the check on
// from the archive before (nil for the first: it starts at this archive's
// first event); readArchive returns it for the next.
func readArchive(st *store.Store, c *store.AuditChain, path string) (archiveSummary, *store.AuditChain, error) {
	sum := archiveSummary{File: path}
	f, err := os.Open(path)
	if err != nil {
		return sum, c, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	line := 0
	for sc.Scan() {
		line++
		var l archiveLine
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			return sum, c, fmt.Errorf("%s:%d: not an archived event: %v", path, line, err)
		}
		e, err := l.event()
		if err != nil {
			return sum, c, fmt.Errorf("%s:%d: %v", path, line, err)
		}
		if sum.Events == 0 {
			sum.First, sum.Prev, sum.FirstAt = e.ID, e.PrevHash, l.At
			if c == nil {
				c = st.NewAuditChain(e.PrevHash)
			} else if e.PrevHash != c.Result().HeadHash {
				return sum, c, errNotContinuing
			}
		} else if e.PrevHash != sum.Head || e.ID <= sum.Last {
			return sum, c, fmt.Errorf("%s:%d: event #%d does not follow event #%d: an event was removed, reordered or changed", path, line, e.ID, sum.Last)
		}
		if !c.Next(&e) {
			return sum, c, fmt.Errorf("%s:%d: event #%d: %s", path, line, e.ID, c.Result().Problem)
		}
		sum.Events++
		sum.Last, sum.Head, sum.LastAt = e.ID, e.Hash, l.At
	}
	if err := sc.Err(); err != nil {
		return sum, c, fmt.Errorf("%s: %w", path, err)
	}
	if sum.Events == 0 {
		return sum, c, fmt.Errorf("%s: holds no events", path)
	}
	return sum, c, nil
}

// archivedHash finds event id in the archives (already verified) and
// returns its hash.
func archivedHash(paths []string, id int64) (string, bool, error) {
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return "", false, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			var l struct {
				ID   int64  `json:"id"`
				Hash string `json:"hash"`
			}
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.ID == id {
				f.Close()
				return l.Hash, true, nil
			}
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return "", false, fmt.Errorf("%s: %w", p, err)
		}
	}
	return "", false, nil
}

// parseUntil reads --until: an RFC 3339 time, a date (midnight UTC), or an
// age (400d: now minus 400 days).
func parseUntil(v string, now time.Time) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, usagef("--until is required: a date (2025-01-01), an RFC 3339 time or an age (400d)")
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	d, err := config.ParseDuration(v)
	if err != nil {
		return time.Time{}, usagef("--until %q: want a date (2025-01-01), an RFC 3339 time or an age (400d)", truncate(v, 40))
	}
	return now.Add(-d.D()), nil
}

// auditRange is what export and prune work on: the events after the
// trail's start (the anchor of the last prune) up to the cut for a date.
type auditRange struct {
	until  time.Time
	anchor store.AuditAnchor
	cut    int64
}

// openRange opens the store and finds the range for --until.
func openRange(ctx context.Context, cmd *command, e env, untilArg string) (*store.Store, auditRange, error) {
	var r auditRange
	until, err := parseUntil(untilArg, e.now())
	if err != nil {
		return nil, r, err
	}
	_, st, err := cmd.openStore(ctx, e)
	if err != nil {
		return nil, r, err
	}
	r.until = until
	if r.anchor, err = st.GetAuditAnchor(ctx); err == nil {
		r.cut, err = st.AuditCut(ctx, until)
	}
	if err != nil {
		st.Close()
		return nil, r, err
	}
	return st, r, nil
}

func cmdAuditExport(ctx context.Context, args []string, e env) error {
	cmd := newCommand("audit export --until DATE|AGE [--out FILE] [--json]", e)
	var untilArg, out string
	cmd.fs.StringVar(&untilArg, "until", "", "export the events before this `date` (2025-01-01, RFC 3339) or older than this age (400d)")
	cmd.fs.StringVar(&out, "out", "", "write the archive to this new `file` (default: standard output)")
	if _, err := cmd.parse(args, e, 0, 0); err != nil {
		return err
	}
	st, rg, err := openRange(ctx, cmd, e, untilArg)
	if err != nil {
		return err
	}
	defer st.Close()
	anchor, cut := rg.anchor, rg.cut
	if cut <= anchor.ThroughID {
		return fmt.Errorf("no events before %s to export", rg.until.UTC().Format(time.RFC3339))
	}

	w := e.stdout
	var tmp *os.File
	if out != "" {
		// Written beside the target and renamed when complete: an archive
		// file is either whole or absent.
		if _, err := os.Stat(out); err == nil {
			return fmt.Errorf("%s already exists: an archive is never overwritten", out)
		}
		tmp, err = os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*")
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		defer tmp.Close()
		if err := tmp.Chmod(0o600); err != nil {
			return err
		}
		w = tmp
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false) // a detail's bytes must stay exactly as hashed
	sum := archiveSummary{File: out}
	err = st.EachAudit(ctx, anchor.ThroughID, cut, func(ev *store.AuditEvent) error {
		l := toArchive(ev)
		if sum.Events == 0 {
			sum.First, sum.Prev, sum.FirstAt = ev.ID, ev.PrevHash, l.At
		}
		sum.Events++
		sum.Last, sum.Head, sum.LastAt = ev.ID, ev.Hash, l.At
		return enc.Encode(l)
	})
	if err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if tmp == nil {
		return nil
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), out); err != nil { // fails if out appeared meanwhile
		return fmt.Errorf("write %s: %w", out, err)
	}
	if cmd.json {
		return writeJSON(e.stdout, sum)
	}
	fmt.Fprintf(e.stdout, "exported %d events (#%d to #%d, %s to %s) to %s\nhead hash %s\nthen: lanyard audit prune --until %s --archive %s\n",
		sum.Events, sum.First, sum.Last, sum.FirstAt, sum.LastAt, out, sum.Head, untilArg, out)
	return nil
}

func cmdAuditPrune(ctx context.Context, args []string, e env) error {
	cmd := newCommand("audit prune --until DATE|AGE --archive FILE [--json]", e)
	var untilArg, archive string
	cmd.fs.StringVar(&untilArg, "until", "", "remove the events before this `date` (the one given to export)")
	cmd.fs.StringVar(&archive, "archive", "", "the archive `file` audit export wrote for exactly these events")
	if _, err := cmd.parse(args, e, 0, 0); err != nil {
		return err
	}
	if archive == "" {
		if _, err := parseUntil(untilArg, e.now()); err != nil {
			return err
		}
		return usagef("--archive is required: prune removes only events an archive holds (lanyard audit export first)")
	}
	st, rg, err := openRange(ctx, cmd, e, untilArg)
	if err != nil {
		return err
	}
	defer st.Close()
	sum, _, err := readArchive(st, nil, archive)
	if err != nil {
		return fmt.Errorf("nothing pruned: %w", err)
	}
	until, anchor, cut := rg.until, rg.anchor, rg.cut
	switch {
	case cut <= anchor.ThroughID:
		return fmt.Errorf("nothing pruned: no events before %s are left in the database", until.UTC().Format(time.RFC3339))
	case sum.Prev != anchor.Hash:
		return fmt.Errorf("nothing pruned: %s does not start where the database's trail starts (after event #%d): export again", archive, anchor.ThroughID)
	case sum.Last != cut:
		return fmt.Errorf("nothing pruned: %s ends at event #%d, but the events before %s end at #%d: export again with the same --until", archive, sum.Last, untilArg, cut)
	}
	n, err := st.PruneAudit(ctx, sum.Last, sum.Head, e.now())
	if errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("nothing pruned: event #%d in the database is not the one in %s", sum.Last, archive)
	}
	if err != nil {
		return err
	}
	// Recorded in the chain itself: an anchor no prune event vouches for is
	// how `audit verify` tells a forged cut.
	if err := adminEvent(ctx, st, evAuditPrune, nil, map[string]any{
		"through_id": sum.Last, "hash": sum.Head, "events": n, "archive": filepath.Base(archive),
		"until": until.UTC().Format(time.RFC3339),
	}); err != nil {
		return err
	}
	if cmd.json {
		return writeJSON(e.stdout, map[string]any{"pruned": n, "through_id": sum.Last, "hash": sum.Head, "archive": archive})
	}
	fmt.Fprintf(e.stdout, "removed %d events (up to #%d); the trail now starts after #%d, hash %s\nkeep %s: lanyard audit verify --archive %s checks the whole chain\n",
		n, sum.Last, sum.Last, sum.Head, archive, archive)
	return nil
}

// verifyArchives checks archives (oldest first) and that they end where the
// database's trail starts; it returns what it found, for the report.
func verifyArchives(ctx context.Context, st *store.Store, paths []string) ([]archiveSummary, error) {
	anchor, err := st.GetAuditAnchor(ctx)
	if err != nil {
		return nil, err
	}
	var sums []archiveSummary
	var chain *store.AuditChain // one check across the archives
	for i, p := range paths {
		sum, c, err := readArchive(st, chain, p)
		if i > 0 && (errors.Is(err, errNotContinuing) || err == nil && sum.Prev != sums[i-1].Head) {
			return sums, fmt.Errorf("%s does not continue %s: give the archives oldest first, none missing", p, sums[i-1].File)
		}
		if err != nil {
			return sums, err
		}
		chain = c
		sums = append(sums, sum)
	}
	if len(sums) > 0 {
		last := sums[len(sums)-1]
		if last.Head != anchor.Hash || last.Last != anchor.ThroughID {
			return sums, fmt.Errorf("%s ends at event #%d, but the database's trail starts after #%d: the archives and the database are not one chain", last.File, last.Last, anchor.ThroughID)
		}
	}
	return sums, nil
}

// checkAnchor reports an anchor that no prune event in the trail vouches for:
// someone removed events and moved the anchor by hand.
func checkAnchor(ctx context.Context, st *store.Store) (store.AuditAnchor, error) {
	anchor, err := st.GetAuditAnchor(ctx)
	if err != nil || anchor.ThroughID == 0 {
		return anchor, err
	}
	evs, err := st.Audit(ctx, store.AuditFilter{Event: string(evAuditPrune)})
	if err != nil {
		return anchor, err
	}
	for _, ev := range evs {
		var d struct {
			ThroughID int64  `json:"through_id"`
			Hash      string `json:"hash"`
		}
		if json.Unmarshal(ev.Detail, &d) == nil && d.ThroughID == anchor.ThroughID && d.Hash == anchor.Hash {
			return anchor, nil
		}
	}
	return anchor, fmt.Errorf("the audit trail starts after event #%d, but no %s event records that prune: events were removed outside lanyard audit prune", anchor.ThroughID, evAuditPrune)
}
