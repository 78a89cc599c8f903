package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"indelible.dev/ledger"
	"indelible.dev/ledger/kv"
)

// storeFailure explains a fatal store error (kv.Fatal: a fenced commit, or
// one whose outcome is unknown) to an operator: which store, what happened,
// that the node signs nothing more, and what to do. store is the --store
// URL (shown without its password or query). The result wraps err.
func storeFailure(store string, err error) error {
	where := "the PostgreSQL store " + redactURL(store)
	if errors.Is(err, kv.ErrAmbiguous) {
		return fmt.Errorf("%s: the connection was lost during a commit, whose outcome only the database knows (%w). "+
			"Stopping without acknowledging or signing anything more. If PostgreSQL failed over, restart indelible serve "+
			"against the promoted primary (--store naming it, a multi-host URL with target_session_attrs=read-write, "+
			"or a proxy that follows the primary): the restart reloads the log from the store", where, err)
	}
	return fmt.Errorf("%s refused a commit (%w): another node took the store over, or the log's head in it moved. "+
		"Stopping without acknowledging or signing anything more; a restart reloads the log from the store", where, err)
}

// watchStore calls stop with the log's error once the log has stopped on a
// fatal store error (kv.Fatal), checking every 100 ms until ctx ends: a
// single node on PostgreSQL then exits instead of answering 500 forever.
func watchStore(ctx context.Context, l *ledger.Log, stop func(error)) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := l.Err(); err != nil && kv.Fatal(err) {
				stop(err)
				return
			}
		}
	}
}
