package postgres_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/postgrestest"
)

func receive(t *testing.T, l *postgres.Listener, what string) postgres.Notification {
	t.Helper()
	select {
	case n, ok := <-l.Notify():
		if !ok {
			t.Fatalf("%s: Notify closed", what)
		}
		return n
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: nothing on Notify", what)
	}
	return postgres.Notification{}
}

// The listener delivers NOTIFY with its payload; after its connection is
// killed it reconnects, says so, and listens again; Close closes Notify.
func TestListener(t *testing.T) {
	t.Parallel()
	d := postgrestest.New(t)
	u, err := url.Parse(d.AppURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", "keel_listener_"+d.Name)
	u.RawQuery = q.Encode()

	lost := make(chan error, 8)
	l := postgres.NewListener(u.String(), 10*time.Millisecond, 100*time.Millisecond, func(err error) {
		select {
		case lost <- err:
		default:
		}
	})
	defer l.Close()
	if err := l.Listen("keel_test"); err != nil {
		t.Fatal(err)
	}
	d.App.MustExec(`SELECT pg_notify('keel_test', 'one')`)
	if n := receive(t, l, "notify"); n != (postgres.Notification{Channel: "keel_test", Payload: "one"}) {
		t.Fatalf("got %+v", n)
	}

	var killed int
	if err := d.Owner.Get(&killed, `SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE application_name = $1) k`, "keel_listener_"+d.Name); err != nil || killed != 1 {
		t.Fatalf("terminated %d listener connections: %v", killed, err)
	}
	if n := receive(t, l, "after the connection was killed"); !n.Reconnected {
		t.Fatalf("got %+v, want Reconnected", n)
	}
	select {
	case <-lost:
	default:
		t.Error("onError was not told of the lost connection")
	}
	d.App.MustExec(`SELECT pg_notify('keel_test', 'two')`)
	if n := receive(t, l, "notify after reconnect"); n.Payload != "two" {
		t.Fatalf("got %+v", n)
	}

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-l.Notify():
		if ok {
			t.Fatal("a notification after Close")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Notify still open after Close")
	}
	if err := l.Close(); err == nil {
		t.Error("a second Close did not fail")
	}
	if err := l.Listen("keel_test"); err == nil {
		t.Error("Listen after Close did not fail")
	}
}

// What the quoting functions produce reads back, on the server, as the
// string that went in.
func TestQuote(t *testing.T) {
	t.Parallel()
	d := postgrestest.New(t)
	for _, s := range []string{"plain", `with "double" quotes`, "it's", `back\slash`, `\'`, "MixedCase", "ünïcode"} {
		var lit string
		if err := d.Owner.Get(&lit, `SELECT `+postgres.QuoteLiteral(s)); err != nil || lit != s {
			t.Errorf("QuoteLiteral(%q) reads back as %q (%v)", s, lit, err)
		}
		rows, err := d.Owner.Query(`SELECT 1 AS ` + postgres.QuoteIdentifier(s))
		if err != nil {
			t.Errorf("QuoteIdentifier(%q): %v", s, err)
			continue
		}
		cols, _ := rows.Columns()
		rows.Close()
		if len(cols) != 1 || cols[0] != s {
			t.Errorf("QuoteIdentifier(%q) names the column %q", s, cols)
		}
	}
}
