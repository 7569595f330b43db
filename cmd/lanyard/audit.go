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
	cmd := newCommand("audit verify [--expect-head ID:HASH] [--json]", e)
	var expect string
	cmd.fs.StringVar(&expect, "expect-head", "", "fail unless event `ID:HASH` (a head printed earlier and kept outside the database) is still in the chain with that hash")
	if _, err := cmd.parse(args, e, 0, 0); err != nil {
		return err
	}
	var wantID int64
	var wantHash string
	if expect != "" {
		m := headPattern.FindStringSubmatch(strings.ToLower(strings.TrimSpace(expect)))
		if m == nil {
			return usagef("--expect-head %q: want ID:HASH as audit verify prints the head, e.g. 1234:9f86d081…", truncate(expect, 80))
		}
		wantID, _ = strconv.ParseInt(m[1], 10, 64)
		wantHash = m[2]
	}
	_, st, err := cmd.openStore(ctx, e)
	if err != nil {
		return err
	}
	defer st.Close()
	c, err := st.CheckAudit(ctx)
	if err != nil {
		return err
	}
	anchorErr := error(nil)
	if c.BadID == 0 && wantID != 0 {
		anchorErr = checkExpectedHead(ctx, st, c, wantID, wantHash)
	}
	if cmd.json {
		out := map[string]any{"intact": c.BadID == 0 && anchorErr == nil, "last_id": c.HeadID, "head_id": c.HeadID, "head_hash": c.HeadHash}
		if c.BadID != 0 {
			out["first_bad_id"], out["problem"] = c.BadID, c.Problem
		}
		if c.UnkeyedThrough != 0 {
			out["unkeyed_through_id"] = c.UnkeyedThrough
		}
		if c.UnkeyedDuringUpgrade != 0 {
			out["unkeyed_during_upgrade"] = c.UnkeyedDuringUpgrade
		}
		if wantID != 0 {
			out["expected_head_found"] = c.BadID == 0 && anchorErr == nil
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
	if cmd.json {
		return nil
	}
	if c.HeadID == 0 {
		fmt.Fprintln(e.stdout, "the audit trail is empty")
		return nil
	}
	fmt.Fprintf(e.stdout, "the audit trail is intact: every event up to #%d chains to the one before it under the deployment's key\n", c.HeadID)
	if c.UnkeyedThrough != 0 {
		fmt.Fprintf(e.stdout, "events up to #%d were written by an older Lanyard, before the chain was keyed; the keyed event after them vouches for them\n", c.UnkeyedThrough)
	}
	if c.UnkeyedDuringUpgrade != 0 {
		fmt.Fprintf(e.stdout, "%d events were written unkeyed by nodes of the older version during the upgrade (in its first %s)\n", c.UnkeyedDuringUpgrade, store.UpgradeGrace)
	}
	if wantID != 0 {
		fmt.Fprintf(e.stdout, "event #%d still has the expected hash\n", wantID)
	}
	fmt.Fprintf(e.stdout, "head: %d:%s\n", c.HeadID, c.HeadHash)
	fmt.Fprintln(e.stdout, "keep the head outside this database (a ticket, a log, paper) and give it later as --expect-head: a trail cut short or rewritten before it will not match")
	return nil
}

// checkExpectedHead checks an intact chain c against a head kept outside
// the database: event id must still be there with hash. The chain is keyed,
// so everything up to it is as it was then.
func checkExpectedHead(ctx context.Context, st *store.Store, c store.AuditCheck, id int64, hash string) error {
	if id > c.HeadID {
		return fmt.Errorf("the audit trail ends at event #%d, before the expected head #%d: events were removed from its end", c.HeadID, id)
	}
	evs, err := st.Audit(ctx, store.AuditFilter{AfterID: id - 1, Limit: 1})
	if err != nil {
		return err
	}
	if len(evs) == 0 || evs[0].ID != id {
		return fmt.Errorf("the expected head, event #%d, is not in the audit trail: events were removed", id)
	}
	if evs[0].Hash != hash {
		return fmt.Errorf("event #%d has hash %s, not the expected %s: the audit trail was rewritten", id, evs[0].Hash, hash)
	}
	return nil
}
