package postgres

import (
	"sync"
	"time"

	"github.com/lib/pq"
)

// Notification is one message from a Listener: a NOTIFY on Channel with its
// Payload or, when Reconnected is true, word that the connection was lost and
// re-established, so notifications sent in between were missed.
type Notification struct {
	Channel     string
	Payload     string
	Reconnected bool
}

// Listener receives PostgreSQL NOTIFY messages on a connection of its own,
// outside the pool. It connects in the background and, whenever the
// connection is lost, reconnects and LISTENs again to every channel it had.
type Listener struct {
	pq     *pq.Listener
	notify chan Notification
	done   chan struct{}
	once   sync.Once
}

// NewListener starts connecting to url and returns at once. After a failed
// attempt or a lost connection it waits minReconnect before the next, doubling
// the wait after each further failure up to maxReconnect. onError, when not
// nil, receives each reason a connection was lost or an attempt failed; it is
// called from the listener's goroutine and must not block.
func NewListener(url string, minReconnect, maxReconnect time.Duration, onError func(error)) *Listener {
	l := &Listener{notify: make(chan Notification), done: make(chan struct{})}
	l.pq = pq.NewListener(url, minReconnect, maxReconnect, func(_ pq.ListenerEventType, err error) {
		if err != nil && onError != nil {
			onError(err)
		}
	})
	go l.forward()
	return l
}

// forward converts the driver's notifications until the driver closes its
// channel after Close. After Close, a notification no receiver takes is
// dropped rather than waited on, so the driver's goroutine can end.
func (l *Listener) forward() {
	defer close(l.notify)
	for n := range l.pq.Notify {
		m := Notification{Reconnected: n == nil}
		if n != nil {
			m.Channel, m.Payload = n.Channel, n.Extra
		}
		select {
		case l.notify <- m:
		case <-l.done:
		}
	}
}

// Listen subscribes to channel (case-sensitive). It blocks until the server
// acknowledges, which may be forever while the database is unreachable; Close
// releases it. It fails when the channel is already subscribed, when the
// server refuses, and after Close.
func (l *Listener) Listen(channel string) error { return l.pq.Listen(channel) }

// Notify returns the channel the notifications arrive on. It is closed after
// Close; a receiver that stops reading must call Close so the listener's
// goroutines end.
func (l *Listener) Notify() <-chan Notification { return l.notify }

// Close disconnects and stops reconnecting. It returns an error when the
// listener was already closed.
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.pq.Close()
}
