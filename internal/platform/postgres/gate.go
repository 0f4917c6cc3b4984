package postgres

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/jmoiron/sqlx"
	"golang.org/x/sync/semaphore"
)

// gates holds, for each pool Open made with a connection limit, a FIFO
// queue in front of it. database/sql hands a freed connection to a random
// waiter (connRequestSet.TakeRandom), so once requests outnumber
// connections some wait many times longer than the rest: under the
// resources benchmark's 64 connections to a pool of 20, the list's p99 was
// about four times its mean. semaphore.Weighted serves waiters in arrival
// order. The tenant paths (QueryMessage, InTxWith, InTx) take a place
// before they take a connection and give it back when they give the
// connection back; other uses of the pool do not queue here and still get
// their connections from database/sql as before.
var gates sync.Map // *sqlx.DB → *gate

type gate struct {
	sem     *semaphore.Weighted
	waiting atomic.Int64
}

func newGate(n int) *gate { return &gate{sem: semaphore.NewWeighted(int64(n))} }

// waiting is how many requests wait in db's queue.
func waiting(db *sqlx.DB) int {
	if g, ok := gates.Load(db); ok {
		return int(g.(*gate).waiting.Load())
	}
	return 0
}

// wait takes a place in db's queue, or returns ctx's error; release gives
// it back. A pool without a limit has no queue.
func wait(ctx context.Context, db *sqlx.DB) (release func(), err error) {
	g, ok := gates.Load(db)
	if !ok {
		return func() {}, nil
	}
	q := g.(*gate)
	q.waiting.Add(1)
	err = q.sem.Acquire(ctx, 1)
	q.waiting.Add(-1)
	if err != nil {
		return nil, err
	}
	var once sync.Once
	return func() { once.Do(func() { q.sem.Release(1) }) }, nil
}
