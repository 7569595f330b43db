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
// per commit). This is what lets the client_credentials grant reach thousands
// of tokens per second.
//
// No goroutine lives between bursts: the first request to find the writer idle
// starts one, which exits when the queue is empty.
type groupCommit struct {
	store *store.Store

	mu      sync.Mutex
	pending []*groupItem
	running bool
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

// write queues one row (and its audit event, if any) and waits for the commit.
func (g *groupCommit) write(row *store.OAuthRow, audit *store.AuditEvent) error {
	it := &groupItem{row: row, audit: audit, done: make(chan error, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, it)
	if !g.running {
		g.running = true
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
			g.running = false
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
	err := g.store.InTx(ctx, func(ctx context.Context) error {
		for _, it := range batch {
			if err := g.writeItem(ctx, it); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil || len(batch) == 1 {
		for _, it := range batch {
			it.done <- err
		}
		return
	}
	for _, it := range batch {
		it.done <- g.store.InTx(ctx, func(ctx context.Context) error { return g.writeItem(ctx, it) })
	}
}

func (g *groupCommit) writeItem(ctx context.Context, it *groupItem) error {
	if err := g.store.CreateOAuth(ctx, it.row); err != nil {
		return err
	}
	if it.audit != nil {
		// AppendAudit joins the transaction; a copy keeps the retry clean.
		ev := *it.audit
		return g.store.AppendAudit(ctx, &ev)
	}
	return nil
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
