package redis

import (
	"context"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// FenceKey is the key ReplicaFence writes; its value is only ever the time
// of the last write.
const FenceKey = "keel:replica-fence"

// ReplicaFence tells whether writes the master acknowledged are also held by
// replicas, so they survive a failover. Redis replicates asynchronously: a
// write the master acknowledged and died before sending is gone once a
// replica is promoted, and nothing tells the writer.
type ReplicaFence struct {
	client  *goredis.Client
	acks    int
	timeout time.Duration
}

// NewReplicaFence opens a fence that asks for acks replicas within timeout.
// It has its own small pool: its reads block up to timeout, longer than the
// request path's clients allow, and it never retries a command on another
// connection, since WAIT answers only for the connection's own last write.
func NewReplicaFence(c Conn, acks int, timeout time.Duration) *ReplicaFence {
	fc := open(c, timeout+2*time.Second, -1, 4)
	return &ReplicaFence{client: fc, acks: acks, timeout: timeout}
}

// Confirm returns nil when every key exists on the master that answers and
// at least the fence's number of replicas acknowledged a write made after
// those keys were seen there.
//
// The check, the fence write and WAIT travel in one pipeline on one
// connection. WAIT counts the replicas that acknowledged this connection's
// last write; the replication stream is ordered, so a replica holding the
// fence holds every earlier write on that master, whichever client made
// it. Checking the keys on the same connection ties them to that master: a
// key acknowledged by a master that died before replicating it is missing on
// the replica promoted in its place, and Confirm fails rather than vouch for
// it. Any error (a dropped connection included) is a failure, never a pass.
func (f *ReplicaFence) Confirm(ctx context.Context, keys []string) error {
	pipe := f.client.Pipeline()
	var exists *goredis.IntCmd
	if len(keys) > 0 {
		exists = pipe.Exists(ctx, keys...)
	}
	pipe.Set(ctx, FenceKey, time.Now().UnixNano(), time.Hour)
	// Pipeliner has no Wait; the pool's read timeout covers its block.
	wait := pipe.Do(ctx, "wait", f.acks, f.timeout.Milliseconds())
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("replica fence: %w", err)
	}
	if exists != nil && exists.Val() != int64(len(keys)) {
		return fmt.Errorf("replica fence: %d of %d task(s) are missing on the current master (lost in a failover)", int64(len(keys))-exists.Val(), len(keys))
	}
	if n, err := wait.Int64(); err != nil || n < int64(f.acks) {
		return fmt.Errorf("replica fence: %d of %d replica(s) acknowledged within %s", n, f.acks, f.timeout)
	}
	return nil
}

// Close releases the fence's connections.
func (f *ReplicaFence) Close() error { return f.client.Close() }
