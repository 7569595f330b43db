package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// txKey is the context key of a transaction. It names the Store, so a
// transaction of one Store is never picked up by another (tests open several).
type txKey struct{ s *Store }

// txState is the transaction a context carries. done is set by Commit and
// Rollback; a context whose transaction is done behaves as if it had none.
type txState struct {
	tx   *sql.Tx
	done bool
	// audit holds the events AppendAudit was given in this transaction,
	// appended to the chain at Commit (see AppendAudit).
	audit []pendingAudit
}

// pendingAudit is an event waiting for Commit: the copy that will be stored
// and the caller's event, filled in once it is.
type pendingAudit struct{ ev, dst *AuditEvent }

func txFrom(ctx context.Context, s *Store) *txState {
	st, _ := ctx.Value(txKey{s}).(*txState)
	return st
}

// ErrTxInProgress is returned by BeginTx when ctx already carries an open
// transaction of this store.
var ErrTxInProgress = errors.New("store: a transaction is already in progress in this context")

// BeginTx starts a transaction and returns a context carrying it; every method
// called with that context runs in it until Commit or Rollback. On SQLite the
// transaction takes the write lock at once (BEGIN IMMEDIATE), so transactions
// are serialized and never fail half-way on a lock upgrade.
func (s *Store) BeginTx(ctx context.Context) (context.Context, error) {
	if st := txFrom(ctx, s); st != nil && !st.done {
		return ctx, ErrTxInProgress
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return ctx, s.mapErr(fmt.Errorf("store: begin transaction: %w", err))
	}
	return context.WithValue(ctx, txKey{s}, &txState{tx: tx}), nil
}

// Commit commits the context's transaction.
func (s *Store) Commit(ctx context.Context) error {
	st := txFrom(ctx, s)
	if st == nil {
		return errors.New("store: commit: no transaction in this context")
	}
	if st.done {
		return errors.New("store: commit: the transaction is already finished")
	}
	if err := s.flushAudit(ctx, st); err != nil {
		st.done = true
		st.tx.Rollback()
		return err
	}
	st.done = true
	if err := st.tx.Commit(); err != nil {
		return s.mapErr(fmt.Errorf("store: commit: %w", err))
	}
	for _, p := range st.audit {
		*p.dst = *p.ev
	}
	return nil
}

// Rollback aborts the context's transaction. After Commit or Rollback it is a
// no-op, so it can be deferred.
func (s *Store) Rollback(ctx context.Context) error {
	st := txFrom(ctx, s)
	if st == nil {
		return errors.New("store: rollback: no transaction in this context")
	}
	if st.done {
		return nil
	}
	st.done = true
	if err := st.tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
		return s.mapErr(fmt.Errorf("store: rollback: %w", err))
	}
	return nil
}

// InTx runs fn in a transaction: committed when fn returns nil, rolled back
// when it returns an error or panics (the panic continues). When ctx already
// carries a transaction, fn joins it and the outer owner decides.
func (s *Store) InTx(ctx context.Context, fn func(ctx context.Context) error) (err error) {
	if st := txFrom(ctx, s); st != nil && !st.done {
		return fn(ctx)
	}
	tctx, err := s.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			s.Rollback(tctx)
			panic(p)
		}
	}()
	if err := fn(tctx); err != nil {
		s.Rollback(tctx)
		return err
	}
	return s.Commit(tctx)
}
