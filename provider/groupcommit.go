package provider

import (
	"context"
	"runtime"
	"sync"
	"time"

	"github.com/lanyard-idp/lanyard/provider/store"
)

// groupCommit writes the rows of many concurrent token requests, each with its
// audit event, in one transaction. Every request still waits until its own row
// and event are committed before it answers, so nothing is acknowledged that
// is not durable; what is shared is the commit, the dominant cost of a small
// write (SQLite commits serialize on one writer; PostgreSQL pays a WAL flush
// per commit), and on PostgreSQL the round trips: a batch of any size is two
// pipelined round trips (store.CreateOAuthBatch). This is what lets the
// client_credentials grant reach thousands of tokens per second.
//
// One committer is the rule: while it commits, the requests that arrive queue,
// and its next batch takes them all, so the batch grows with the load. A
// second committer (up to inFlight; always one on SQLite, whose single writer
// would only queue them) starts only when more than a full batch is waiting:
// then its rows go in while the first batch holds the audit chain's lock and
// waits for the disk. Starting them sooner was measured to cost throughput:
// the batches shrink, each pays its own round trips and commit, and they
// still take the chain's lock one after the other (see README, Performance).
//
// No goroutine lives between bursts: the first request to find no committer
// running starts one, which exits when the queue is empty.
type groupCommit struct {
	store    *store.Store
	inFlight int

	mu      sync.Mutex
	pending []*groupItem
	running int
}

type groupItem struct {
	row   *store.OAuthRow
	audit *store.AuditEvent
	done  chan error
}

const (
	groupMaxBatch = 256
	groupTimeout  = 10 * time.Second
)

func newGroupCommit(st *store.Store) *groupCommit {
	return &groupCommit{store: st, inFlight: st.WriteConcurrency()}
}

// write queues one row (and its audit event, if any) and waits for the commit.
func (g *groupCommit) write(row *store.OAuthRow, audit *store.AuditEvent) error {
	it := &groupItem{row: row, audit: audit, done: make(chan error, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, it)
	if g.running == 0 || g.running < g.inFlight && len(g.pending) > groupMaxBatch {
		g.running++
		go g.loop()
	}
	g.mu.Unlock()
	return <-it.done
}

func (g *groupCommit) loop() {
	for {
		// Let the handlers that are already running queue their rows before
		// the batch is cut: on a busy server this multiplies the batch size
		// (and divides the commits) for the price of a scheduler round.
		runtime.Gosched()
		g.mu.Lock()
		n := min(len(g.pending), groupMaxBatch)
		if n == 0 {
			g.running--
			g.mu.Unlock()
			return
		}
		batch := g.pending[:n:n]
		g.pending = g.pending[n:]
		g.mu.Unlock()
		g.commit(batch)
	}
}

// commit writes a batch in one transaction. The batch's context is detached
// from the requests: one client hanging up must not fail the others. If the
// batch fails, each item is retried alone so that one bad row cannot take
// the others down with it.
func (g *groupCommit) commit(batch []*groupItem) {
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	ws := make([]store.OAuthWrite, len(batch))
	for i, it := range batch {
		ws[i] = it.write()
	}
	err := g.store.CreateOAuthBatch(ctx, ws)
	if err == nil || len(batch) == 1 {
		for _, it := range batch {
			it.done <- err
		}
		return
	}
	for _, it := range batch {
		it.done <- g.store.CreateOAuthBatch(ctx, []store.OAuthWrite{it.write()})
	}
}

// write is the item for the store; the audit event is a copy, so a retry
// after a failed batch starts clean.
func (it *groupItem) write() store.OAuthWrite {
	w := store.OAuthWrite{Row: it.row}
	if it.audit != nil {
		ev := *it.audit
		w.Audit = &ev
	}
	return w
}

// issueAuditKey carries the audit event of a token issue in the request
// context, so that Storage writes it with the access token: in fosite's
// transaction for the code and refresh grants, in the group commit for client
// credentials. Either both are stored or neither.
type issueAuditKey struct{}

func withIssueAudit(ctx context.Context, ev *store.AuditEvent) context.Context {
	return context.WithValue(ctx, issueAuditKey{}, ev)
}

func issueAudit(ctx context.Context) (*store.AuditEvent, bool) {
	ev, ok := ctx.Value(issueAuditKey{}).(*store.AuditEvent)
	return ev, ok
}

// grantsSeenKey carries, in a token or revocation request's context, the
// grants Storage read for the request (codes, refresh and access tokens),
// in order. fosite revokes a reused grant's family, or a revoked token's,
// without saying which: the endpoints audit it from these.
type grantsSeenKey struct{}

// grantSeen is a code or token Storage read: its kind, the family's request
// id, client and subject, and whether it was still active.
type grantSeen struct {
	kind, requestID, clientID, subject string
	active                             bool
}

// grantsSeen collects the grants read in one request (whose storage calls
// follow one another).
type grantsSeen struct{ list []grantSeen }

func withGrantsSeen(ctx context.Context) (context.Context, *grantsSeen) {
	g := &grantsSeen{}
	return context.WithValue(ctx, grantsSeenKey{}, g), g
}

// noteGrant records row in the request's grants seen, if it collects them.
func noteGrant(ctx context.Context, row *store.OAuthRow) {
	if g, ok := ctx.Value(grantsSeenKey{}).(*grantsSeen); ok {
		g.list = append(g.list, grantSeen{kind: row.Kind, requestID: row.RequestID, clientID: row.ClientID,
			subject: row.Subject, active: row.Active})
	}
}

// first returns the first grant seen that match accepts.
func (g *grantsSeen) first(match func(grantSeen) bool) (grantSeen, bool) {
	for _, x := range g.list {
		if match(x) {
			return x, true
		}
	}
	return grantSeen{}, false
}
