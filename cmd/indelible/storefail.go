package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"indelible.dev/ledger"
	"indelible.dev/ledger/kv"
)

// storeFailure explains why a log on PostgreSQL stopped (ledger.Log.Err: a
// fenced commit, one whose outcome is unknown, or one that failed) to an
// operator, on one line: which store, what happened, that the node
// acknowledges and signs nothing more, what to do, then the error itself.
// store is the --store URL (shown without its password or query). The
// result wraps err.
func storeFailure(store string, err error) error {
	const failover = "If PostgreSQL failed over, restart indelible serve against the promoted primary " +
		"(--store naming it, a multi-host URL with target_session_attrs=read-write, or a proxy that follows the primary): " +
		"the restart reloads the log from the store"
	var what string
	switch {
	case errors.Is(err, kv.ErrAmbiguous):
		what = "the connection was lost during a commit, whose outcome only the database knows. " +
			"Stopping without acknowledging or signing anything more. " + failover
	case errors.Is(err, kv.ErrFenced):
		what = "it refused a commit: another node took the store over, or the log's head in it moved. " +
			"Stopping without acknowledging or signing anything more; a restart reloads the log from the store"
	default:
		what = "a commit failed and the log stopped. Stopping without acknowledging or signing anything more. " + failover
	}
	// pgx's connection errors span lines (one per host tried).
	cause := strings.Join(strings.Fields(err.Error()), " ")
	return &storeError{msg: fmt.Sprintf("the PostgreSQL store %s: %s. The error: %s", redactURL(store), what, cause), err: err}
}

// storeError is storeFailure's error: serve exits with it.
type storeError struct {
	msg string
	err error
}

func (e *storeError) Error() string { return e.msg }
func (e *storeError) Unwrap() error { return e.err }

// watchStore calls stop with the log's error once the log has stopped on a
// store error (any but a hook's halt, which its hook reports), checking
// every 100 ms until ctx ends: a single node on PostgreSQL then exits
// instead of answering 500 forever, and a restart reloads the log.
func watchStore(ctx context.Context, l *ledger.Log, stop func(error)) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := storeStopped(l); err != nil {
				stop(err)
				return
			}
		}
	}
}

// storeStopped returns the error that stopped l if it came from its store
// (a fenced, ambiguous or failed commit), or nil.
func storeStopped(l *ledger.Log) error {
	err := l.Err()
	if err == nil || errors.Is(err, ledger.ErrHalted) {
		return nil
	}
	return err
}
