package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/outbox"
)

// outboxSweep runs outbox:sweep: ordinary relay passes, which claim rows
// with SKIP LOCKED and enqueue them under their own IDs, so it is safe
// alongside running relays.
type outboxSweep struct {
	db      *sqlx.DB
	queue   outbox.Enqueuer
	confirm outbox.Confirmer
	log     zerolog.Logger
}

// sweepPasses bounds one sweep; what is left waits for the next minute.
const sweepPasses = 50

// staleAfter is how long a row waits before the sweep counts it as missed
// by the relays.
const staleAfter = time.Minute

func (s *outboxSweep) run(ctx context.Context) (any, error) {
	stale := func() (int64, error) { return outbox.Stale(ctx, s.db, staleAfter) }
	before, err := stale()
	if err != nil {
		return nil, fmt.Errorf("count stale outbox rows: %w", err)
	}
	detail := map[string]int64{"stale_before": before}
	if before == 0 {
		return detail, nil
	}
	r := &outbox.Relay{DB: s.db, Queue: s.queue, Log: s.log, Batch: 200, Confirm: s.confirm}
	var moved int64
	for i := 0; i < sweepPasses; i++ {
		n, err := r.RunOnce(ctx)
		moved += int64(n)
		if err != nil {
			detail["dispatched"] = moved
			return detail, err
		}
		if n < r.Batch {
			break
		}
	}
	detail["dispatched"] = moved
	after, err := stale()
	if err == nil {
		detail["stale_after"] = after
	}
	return detail, nil
}
