package postgres

import (
	"context"
	"crypto/sha256"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// Stmt is one statement of a message: a query with $n placeholders and its
// arguments (the types Inline writes).
type Stmt struct {
	Query string
	Args  []any
}

// Message is a read sent as one simple-protocol message on one pooled
// connection; Rows are the message's result sets. Close it once Rows are
// read: it closes Rows and gives the connection back to the pool.
type Message struct {
	Rows *sqlx.Rows
	conn *sqlx.Conn
	key  any
}

// Close closes the rows and releases the connection. err is how reading
// went: a statement missing on the server (someone ran DISCARD, or a pooler
// moved the session) drops the connection, so the next message prepares
// again on a fresh one.
func (m *Message) Close(err error) {
	if m == nil || m.conn == nil {
		return
	}
	if m.Rows != nil {
		_ = m.Rows.Close()
	}
	if isStaleStatement(err) {
		discard(m.conn, m.key)
	}
	_ = m.conn.Close()
	m.conn = nil
}

// QueryMessage runs stmts as one simple-protocol message: PostgreSQL runs
// it as one implicit transaction, so a transaction-local set_config among
// the first statements covers the later ones and ends with them, at the
// cost of one round trip.
//
// Each statement runs as EXECUTE of a statement prepared on that connection,
// PREPAREd in the same message the first time the connection sees it: a
// short read's cost on the server is mostly planning, which a prepared
// statement does once per connection instead of on every request
// (docs/benchmarks.md: the list's caller check planned each time answered
// 7,700 per second on two cores, prepared 27,000). The arguments are written
// as literals (Inline's), so nothing but the statement's text decides its
// name. A database opened with Options.Unprepared gets the statements
// inlined instead, for poolers that do not keep a session's prepared
// statements (PgBouncer in transaction mode).
func QueryMessage(ctx context.Context, db *sqlx.DB, stmts ...Stmt) (*Message, error) {
	if _, off := unprepared.Load(db); off {
		parts := make([]string, len(stmts))
		for i, s := range stmts {
			q, err := Inline(s.Query, s.Args)
			if err != nil {
				return nil, err
			}
			parts[i] = q
		}
		conn, err := db.Connx(ctx)
		if err != nil {
			return nil, err
		}
		rows, err := conn.QueryxContext(ctx, strings.Join(parts, ";"))
		if err != nil {
			_ = conn.Close()
			return nil, err
		}
		return &Message{Rows: rows, conn: conn}, nil
	}
	m, err := prepared.query(ctx, db, stmts)
	if isStaleStatement(err) {
		// The connection had lost a statement it had prepared; query
		// discarded it, and a fresh connection prepares everything.
		m, err = prepared.query(ctx, db, stmts)
	}
	return m, err
}

// unprepared holds the pools opened with Options.Unprepared.
var unprepared sync.Map

// preparedStatements remembers, for each pooled connection (its driver
// connection, which database/sql keeps for the connection's life), the
// statements prepared on it. It is bounded: a connection it forgot prepares
// again, finds its statements there, and is replaced (isStaleStatement).
type preparedStatements struct {
	mu    sync.Mutex
	conns *lru.Cache[any, map[string]struct{}]
}

var prepared = func() *preparedStatements {
	c, _ := lru.New[any, map[string]struct{}](4096) // fails only for a size <= 0
	return &preparedStatements{conns: c}
}()

func (p *preparedStatements) query(ctx context.Context, db *sqlx.DB, stmts []Stmt) (*Message, error) {
	conn, err := db.Connx(ctx)
	if err != nil {
		return nil, err
	}
	var key any
	_ = conn.Raw(func(dc any) error { key = dc; return nil })
	p.mu.Lock()
	have, _ := p.conns.Get(key)
	p.mu.Unlock()

	var b strings.Builder
	names := make([]string, len(stmts))
	var added []string
	for i, s := range stmts {
		names[i] = statementName(s.Query)
		if _, ok := have[names[i]]; ok || contains(added, names[i]) {
			continue
		}
		b.WriteString("PREPARE " + names[i] + " AS " + s.Query + ";")
		added = append(added, names[i])
	}
	for i, s := range stmts {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString("EXECUTE " + names[i])
		for j, a := range s.Args {
			l, err := literal(a)
			if err != nil {
				_ = conn.Close()
				return nil, fmt.Errorf("statement %d, $%d: %w", i+1, j+1, err)
			}
			if j == 0 {
				b.WriteByte('(')
			} else {
				b.WriteByte(',')
			}
			b.WriteString(l)
		}
		if len(s.Args) > 0 {
			b.WriteByte(')')
		}
	}
	rows, err := conn.QueryxContext(ctx, b.String())
	if err != nil {
		// Some PREPAREs may have run (they outlive a failed message): the
		// connection's statements are no longer known, so it goes.
		if len(added) > 0 || isStaleStatement(err) {
			discard(conn, key)
		}
		_ = conn.Close()
		return nil, err
	}
	// lib/pq reads past every statement that returns no rows before the
	// first that does; the PREPAREs come first, so all of them ran.
	if len(added) > 0 {
		p.mu.Lock()
		next := make(map[string]struct{}, len(have)+len(added))
		for n := range have {
			next[n] = struct{}{}
		}
		for _, n := range added {
			next[n] = struct{}{}
		}
		p.conns.Add(key, next)
		p.mu.Unlock()
	}
	return &Message{Rows: rows, conn: conn, key: key}, nil
}

// discard closes conn's connection instead of returning it to the pool,
// and forgets its statements.
func discard(conn *sqlx.Conn, key any) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	prepared.mu.Lock()
	prepared.conns.Remove(key)
	prepared.mu.Unlock()
}

// statementName names a query's prepared statement after its text.
func statementName(query string) string {
	h := sha256.Sum256([]byte(query))
	return "keel_" + hex.EncodeToString(h[:10])
}

// isStaleStatement reports a prepared statement missing on the server, or
// already there when it was thought not to be.
func isStaleStatement(err error) bool {
	var pe *pq.Error
	if !errors.As(err, &pe) {
		return false
	}
	return pe.Code == "26000" || pe.Code == "42P05" // invalid_sql_statement_name, duplicate_prepared_statement
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
