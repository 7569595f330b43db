package main

// lanyard audit: read the audit trail, follow it, verify its hash chain.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/provider/store"
)

// eventPattern is what an event filter may look like: the names Lanyard
// writes, or a prefix of them ending in ".".
var eventPattern = regexp.MustCompile(`^[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$`)

// followEvery is how often --follow looks for new events.
var followEvery = 500 * time.Millisecond

// auditLine is one event as `audit --json` prints it (one JSON object per
// line, so that --follow can stream).
type auditLine struct {
	ID         int64           `json:"id"`
	At         string          `json:"at"`
	Event      string          `json:"event"`
	UserID     string          `json:"user_id,omitempty"`
	Username   string          `json:"username,omitempty"`
	ClientID   string          `json:"client_id,omitempty"`
	ClientAddr string          `json:"client_addr,omitempty"`
	UserAgent  string          `json:"user_agent,omitempty"`
	Detail     json.RawMessage `json:"detail,omitempty"`
	Hash       string          `json:"hash"`
}

func cmdAudit(ctx context.Context, args []string, e env) error {
	cmd := newCommand("audit [--user EMAIL] [--event NAME|PREFIX.] [--since 24h|RFC3339|all] [--limit N] [--follow] [--json]", e)
	var userArg, event, since string
	var limit int
	var follow bool
	cmd.fs.StringVar(&userArg, "user", "", "only events of the officer with this `email` address")
	cmd.fs.StringVar(&event, "event", "", "only this `event`, or every event under a prefix ending in \".\" (signin.)")
	cmd.fs.StringVar(&since, "since", "24h", "events of the last `duration` (90m, 24h, 7d), since an RFC 3339 time, or all")
	cmd.fs.IntVar(&limit, "limit", 0, "print at most `n` events (0: no limit)")
	cmd.fs.BoolVar(&follow, "follow", false, "keep printing new events as they are written (Ctrl-C to stop)")
	if _, err := cmd.parse(args, e, 0, 0); err != nil {
		return err
	}
	f := store.AuditFilter{Limit: limit}
	if limit < 0 {
		return usagef("--limit must be 0 or more")
	}
	if event != "" {
		if len(event) > 64 || !eventPattern.MatchString(event) {
			return usagef("--event %q: want an event name such as signin.failure, or a prefix such as signin.", truncate(event, 64))
		}
		f.Event = event
	}
	switch since = strings.TrimSpace(since); {
	case since == "all":
	case strings.Contains(since, "T"):
		t, err := time.Parse(time.RFC3339, since)
		if err != nil {
			return usagef("--since %q: want a duration (24h, 7d), an RFC 3339 time (2026-11-26T09:00:00Z) or all", truncate(since, 40))
		}
		f.Since = t
	default:
		d, err := config.ParseDuration(since)
		if err != nil {
			return usagef("--since: %v", err)
		}
		f.Since = e.now().Add(-d.D())
	}
	var username string
	if userArg != "" {
		var err error
		if username, err = canonical(userArg); err != nil {
			return err
		}
	}
	_, st, err := cmd.openStore(ctx, e)
	if err != nil {
		return err
	}
	defer st.Close()
	// An existing account is matched by id (its sign-ins, tokens, admin
	// actions); a deleted one (a revoked invitation) by the name recorded.
	if username != "" {
		u, err := st.UserByUsername(ctx, username)
		switch {
		case err == nil:
			f.UserID = u.ID
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
	}
	match := func(ev store.AuditEvent) bool { return f.UserID != "" || username == "" || ev.Username == username }

	printed := 0
	emit := func(evs []store.AuditEvent) error {
		for _, ev := range evs {
			if !match(ev) {
				continue
			}
			if err := printEvent(e.stdout, ev, cmd.json); err != nil {
				return err
			}
			printed++
		}
		return nil
	}
	evs, err := st.Audit(ctx, f)
	if err != nil {
		return err
	}
	if err := emit(evs); err != nil {
		return err
	}
	if !follow {
		if !cmd.json && printed == 0 {
			fmt.Fprintln(e.stdout, "no events")
		}
		return nil
	}
	// Follow from the newest event already in the trail, whether or not it
	// matched: ids grow in commit order, so nothing is skipped or repeated.
	last, err := st.LastAuditID(ctx)
	if err != nil {
		return err
	}
	if len(evs) > 0 && limit == 0 {
		last = max(last, evs[len(evs)-1].ID)
	}
	f.Since, f.Limit = time.Time{}, 1000
	t := time.NewTicker(followEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		f.AfterID = last
		evs, err := st.Audit(ctx, f)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if err := emit(evs); err != nil {
			return err
		}
		if len(evs) > 0 {
			last = evs[len(evs)-1].ID
		}
	}
}

func printEvent(w io.Writer, ev store.AuditEvent, asJSON bool) error {
	if asJSON {
		l := auditLine{ID: ev.ID, At: ev.At.UTC().Format(time.RFC3339Nano), Event: string(ev.Event), UserID: ev.UserID,
			Username: ev.Username, ClientID: ev.ClientID, ClientAddr: ev.ClientAddr, UserAgent: ev.UserAgent, Hash: ev.Hash}
		if len(ev.Detail) > 0 && json.Valid(ev.Detail) {
			l.Detail = ev.Detail
		}
		b, err := json.Marshal(l)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	who := ev.Username
	if who == "" {
		who = "-"
	}
	extra := ""
	if ev.ClientID != "" {
		extra += " client=" + ev.ClientID
	}
	if ev.ClientAddr != "" {
		extra += " addr=" + ev.ClientAddr
	}
	if len(ev.Detail) > 0 && string(ev.Detail) != "{}" && string(ev.Detail) != "null" {
		extra += " " + string(ev.Detail)
	}
	_, err := fmt.Fprintf(w, "%s  #%-6d %-30s %-32s%s\n", ev.At.UTC().Format("2006-01-02 15:04:05Z"), ev.ID, oneLine(string(ev.Event)), oneLine(who), oneLine(extra))
	return err
}

// headPattern is --expect-head: an event id and its hash, as audit verify
// prints the head.
var headPattern = regexp.MustCompile(`^#?([0-9]{1,18}):([0-9a-f]{64})$`)

func cmdAuditVerify(ctx context.Context, args []string, e env) error {
	cmd := newCommand("audit verify [--archive FILE]... [--expect-head ID:HASH] [--json]", e)
	var archives stringList
	var expect string
	cmd.fs.Var(&archives, "archive", "also verify this archive `file` of pruned events (repeat, oldest first): together with the database, one chain")
	cmd.fs.StringVar(&expect, "expect-head", "", "fail unless event `ID:HASH` (a head printed earlier and kept outside the database) is still in the chain with that hash")
	if _, err := cmd.parse(args, e, 0, 0); err != nil {
		return err
	}
	var want auditHead
	if expect != "" {
		m := headPattern.FindStringSubmatch(strings.ToLower(strings.TrimSpace(expect)))
		if m == nil {
			return usagef("--expect-head %q: want ID:HASH as audit verify prints the head, e.g. 1234:9f86d081…", truncate(expect, 80))
		}
		want.id, _ = strconv.ParseInt(m[1], 10, 64)
		want.hash = m[2]
	}
	_, st, err := cmd.openStore(ctx, e)
	if err != nil {
		return err
	}
	defer st.Close()
	sums, err := verifyArchives(ctx, st, archives)
	if err != nil {
		return err
	}
	anchor, anchorErr := checkAnchor(ctx, st)
	c, err := st.CheckAudit(ctx)
	if err != nil {
		return err
	}
	// The head: the newest event, or the last one pruned when none is left.
	head := auditHead{c.HeadID, c.HeadHash}
	if c.Events == 0 && anchor.ThroughID != 0 {
		head = auditHead{anchor.ThroughID, anchor.Hash}
	}
	var headErr error
	if c.BadID == 0 && want.id != 0 {
		headErr = checkExpectedHead(ctx, st, head, anchor, archives, want)
	}
	if cmd.json {
		out := map[string]any{"intact": c.BadID == 0 && anchorErr == nil && headErr == nil,
			"last_id": head.id, "head_id": head.id, "head_hash": head.hash}
		if c.BadID != 0 {
			out["first_bad_id"], out["problem"] = c.BadID, c.Problem
		}
		if c.UnkeyedThrough != 0 {
			out["unkeyed_through_id"] = c.UnkeyedThrough
		}
		if c.UnkeyedDuringUpgrade != 0 {
			out["unkeyed_during_upgrade"] = c.UnkeyedDuringUpgrade
		}
		if anchor.ThroughID != 0 {
			out["starts_after_id"], out["pruned_events"] = anchor.ThroughID, anchor.Events
		}
		if len(sums) > 0 {
			out["archives"] = sums
		}
		if want.id != 0 {
			out["expected_head_found"] = c.BadID == 0 && headErr == nil
		}
		if err := writeJSON(e.stdout, out); err != nil {
			return err
		}
	}
	if c.BadID != 0 {
		return fmt.Errorf("the audit trail is broken at event #%d: %s", c.BadID, c.Problem)
	}
	if anchorErr != nil {
		return anchorErr
	}
	if headErr != nil {
		return headErr
	}
	if cmd.json {
		return nil
	}
	for _, s := range sums {
		fmt.Fprintf(e.stdout, "archive %s is intact: events #%d to #%d (%d events)\n", s.File, s.First, s.Last, s.Events)
	}
	switch {
	case head.id == 0:
		fmt.Fprintln(e.stdout, "the audit trail is empty")
		return nil
	case anchor.ThroughID == 0:
		fmt.Fprintf(e.stdout, "the audit trail is intact: every event up to #%d chains to the one before it under the deployment's key\n", head.id)
	case len(sums) > 0:
		fmt.Fprintf(e.stdout, "the audit trail is intact: the archives and every event up to #%d are one chain under the deployment's key\n", head.id)
	default:
		fmt.Fprintf(e.stdout, "the audit trail is intact from event #%d (after %d pruned events) up to #%d; give the archives with --archive to check them too\n",
			anchor.ThroughID+1, anchor.Events, head.id)
	}
	if c.UnkeyedThrough != 0 {
		fmt.Fprintf(e.stdout, "events up to #%d were written by an older Lanyard, before the chain was keyed; the keyed event after them vouches for them\n", c.UnkeyedThrough)
	}
	if c.UnkeyedDuringUpgrade != 0 {
		fmt.Fprintf(e.stdout, "%d events were written unkeyed by nodes of the older version during the upgrade (in its first %s)\n", c.UnkeyedDuringUpgrade, store.UpgradeGrace)
	}
	if want.id != 0 {
		fmt.Fprintf(e.stdout, "event #%d still has the expected hash\n", want.id)
	}
	fmt.Fprintf(e.stdout, "head: %d:%s\n", head.id, head.hash)
	fmt.Fprintln(e.stdout, "keep the head outside this database (a ticket, a log, paper) and give it later as --expect-head: a trail cut short or rewritten before it will not match")
	return nil
}

// auditHead is an event of the chain by its id and hash, as audit verify
// prints the head and --expect-head takes it.
type auditHead struct {
	id   int64
	hash string
}

// checkExpectedHead checks an intact chain, whose head is head, against a
// head kept outside the database: event want.id must still be there with
// want.hash. The chain is keyed, so everything up to it is as it was then.
// A pruned event is the anchor, or is looked up in the archives given
// (which verifyArchives has checked are one chain with the database).
func checkExpectedHead(ctx context.Context, st *store.Store, head auditHead, anchor store.AuditAnchor, archives []string, want auditHead) error {
	if want.id > head.id {
		return fmt.Errorf("the audit trail ends at event #%d, before the expected head #%d: events were removed from its end", head.id, want.id)
	}
	var got string
	switch {
	case want.id == anchor.ThroughID:
		got = anchor.Hash
	case want.id < anchor.ThroughID:
		h, ok, err := archivedHash(archives, want.id)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("the expected head, event #%d, was pruned (the trail starts after #%d): give the archive that holds it with --archive", want.id, anchor.ThroughID)
		}
		got = h
	default:
		evs, err := st.Audit(ctx, store.AuditFilter{AfterID: want.id - 1, Limit: 1})
		if err != nil {
			return err
		}
		if len(evs) == 0 || evs[0].ID != want.id {
			return fmt.Errorf("the expected head, event #%d, is not in the audit trail: events were removed", want.id)
		}
		got = evs[0].Hash
	}
	if got != want.hash {
		return fmt.Errorf("event #%d has hash %s, not the expected %s: the audit trail was rewritten", want.id, got, want.hash)
	}
	return nil
}

// stringList is a flag that may be repeated.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }
