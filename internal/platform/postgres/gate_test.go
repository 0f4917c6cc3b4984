package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/platform/postgres"
)

// Requests waiting for a pool's connections get them in the order they
// came, whichever path they take (a message, InTxWith, InTx); database/sql
// alone hands a freed connection to a random waiter. One connection, held
// while 8 requests queue one after another: they must run in arrival
// order (by chance: 1 in 40,320), and a waiter whose context ends leaves
// the queue without taking a place.
func TestPoolWaitersAreServedInOrder(t *testing.T) {
	t.Parallel()
	_, db := onePool(t, false)
	ctx := context.Background()
	org := uuid.New()
	held, err := postgres.QueryMessage(ctx, db, postgres.Stmt{Query: `SELECT 1`})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		order []int
		wg    sync.WaitGroup
	)
	ran := func(i int) {
		mu.Lock()
		order = append(order, i)
		mu.Unlock()
	}
	paths := []func(i int) error{
		func(i int) error {
			_, _, err := readMessage(ctx, db, org, i)
			ran(i)
			return err
		},
		func(i int) error {
			return postgres.InTxWith(ctx, db, org, nil, func(*sqlx.Rows) error { return nil }, func(*sqlx.Tx) error { ran(i); return nil })
		},
		func(i int) error {
			return postgres.InTx(ctx, db, org, func(*sqlx.Tx) error { ran(i); return nil })
		},
	}
	gone, cancel := context.WithCancel(ctx)
	defer cancel()
	for i := range 8 {
		if i == 4 { // one that gives up while queued
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := postgres.QueryMessage(gone, db, postgres.Stmt{Query: `SELECT 1`}); !errors.Is(err, context.Canceled) {
					t.Errorf("cancelled waiter: %v", err)
				}
			}()
			waitWaiters(t, db, i+1)
			cancel()
			waitWaiters(t, db, i)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := paths[i%len(paths)](i); err != nil {
				t.Errorf("request %d: %v", i, err)
			}
		}()
		// Each queues before the next starts.
		waitWaiters(t, db, i+1)
	}
	held.Close(nil)
	wg.Wait()
	if fmt.Sprint(order) != "[0 1 2 3 4 5 6 7]" {
		t.Fatalf("served in the order %v, want arrival order", order)
	}
}

// waitWaiters waits until exactly n requests wait in db's queue.
func waitWaiters(t *testing.T, db *sqlx.DB, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for postgres.Waiting(db) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued, want %d", postgres.Waiting(db), n)
		}
		time.Sleep(time.Millisecond)
	}
}
