package postgres

import (
	"context"
	"crypto/sha256"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"
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
	Rows    *sqlx.Rows
	conn    *sqlx.Conn
	key     any
	release func() // the pool queue's place (gate.go)
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
	if m.release != nil {
		m.release()
	}
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
	release, err := wait(ctx, db)
	if err != nil {
		return nil, err
	}
	m, err := queryMessage(ctx, db, stmts)
	if err != nil {
		release()
		return nil, err
	}
	m.release = release
	return m, nil
}

func queryMessage(ctx context.Context, db *sqlx.DB, stmts []Stmt) (*Message, error) {
	if _, off := unprepared.Load(db); off {
		msg, err := inlineAll(stmts)
		if err != nil {
			return nil, err
		}
		conn, err := db.Connx(ctx)
		if err != nil {
			return nil, err
		}
		rows, err := conn.QueryxContext(ctx, msg)
		if err != nil {
			_ = conn.Close()
			return nil, err
		}
		return &Message{Rows: rows, conn: conn}, nil
	}
	m, err := prepared.query(ctx, db, stmts)
	// Only a stale statement is retried: it failed before running
	// anything.
	if isStaleStatement(err) {
		// The connection had lost a statement it had prepared; query
		// discarded it, and a fresh connection prepares everything.
		m, err = prepared.query(ctx, db, stmts)
	}
	return m, err
}

// inlineAll writes stmts as one message of statements with their
// arguments inlined (Options.Unprepared).
func inlineAll(stmts []Stmt) (string, error) {
	parts := make([]string, len(stmts))
	for i, s := range stmts {
		q, err := Inline(s.Query, s.Args)
		if err != nil {
			return "", err
		}
		parts[i] = q
	}
	return strings.Join(parts, ";"), nil
}

// InTxWith is InTx for a transaction that opens with first: right after
// BEGIN, one message sets the tenant (when orgID is not uuid.Nil) and runs
// first's statements, prepared on the connection as QueryMessage's are;
// read gets their result sets, the tenant's first, and then fn runs. A
// check that every tenant transaction starts with thus costs one round
// trip instead of four, and is planned once per connection. A connection
// that had lost its statements is dropped and the transaction, which had
// run nothing yet, starts again on another.
func InTxWith(ctx context.Context, db *sqlx.DB, orgID uuid.UUID, first []Stmt, read func(rows *sqlx.Rows) error,
	fn func(tx *sqlx.Tx) error) error {
	err := inTxWith(ctx, db, orgID, first, read, fn)
	var s staleStart
	if errors.As(err, &s) {
		err = inTxWith(ctx, db, orgID, first, read, fn)
	}
	if errors.As(err, &s) {
		return s.err
	}
	return err
}

// staleStart is the error of a transaction whose opening message found a
// statement missing: nothing ran, so it may start again.
type staleStart struct{ err error }

func (s staleStart) Error() string { return s.err.Error() }
func (s staleStart) Unwrap() error { return s.err }

func inTxWith(ctx context.Context, db *sqlx.DB, orgID uuid.UUID, first []Stmt, read func(rows *sqlx.Rows) error,
	fn func(tx *sqlx.Tx) error) (err error) {
	release, err := wait(ctx, db)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer release() // after the connection's Close deferred below
	conn, err := db.Connx(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	key := connKey(conn)
	unknown := false
	tc := &txConn{key: key}
	defer func() { // after the transaction has ended (deferred below)
		if unknown || (err != nil && tc.added) {
			discard(conn, key)
		}
		_ = conn.Close()
	}()
	tx, err := conn.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer rollbackUnlessDone(tx, &err)
	stmts := first
	if orgID != uuid.Nil {
		stmts = append([]Stmt{TenantStmt(orgID)}, first...)
	}
	var (
		msg   string
		added []string
	)
	_, off := unprepared.Load(db)
	if off {
		msg, err = inlineAll(stmts)
	} else {
		msg, added, err = prepared.build(key, stmts)
	}
	if err != nil {
		return err
	}
	rows, err := tx.QueryxContext(ctx, msg)
	if err != nil {
		unknown = unknownAfter(added, err)
		if isStaleStatement(err) {
			return staleStart{err}
		}
		return err
	}
	prepared.record(key, added)
	err = read(rows)
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if isStaleStatement(err) {
			unknown = true
			return staleStart{err}
		}
		return err
	}
	if !off {
		txConns.Store(tx, tc)
		defer txConns.Delete(tx)
	}
	err = runAndCommit(tx, fn)
	if err != nil && (tc.stale || isStaleStatement(err)) {
		// A statement Prepared counted on was missing (or one it
		// prepared was there): the transaction failed whole, so it may
		// start again on another connection, whatever fn made of the
		// error.
		unknown = true
		return staleStart{err}
	}
	return err
}

// setTenantQuery is SetTenant's statement.
const setTenantQuery = `SELECT set_config('app.org_id', $1, true)`

// TenantStmt is SetTenant's statement for a message: app.org_id for the
// rest of the message's transaction.
func TenantStmt(orgID uuid.UUID) Stmt {
	return Stmt{Query: setTenantQuery, Args: []any{orgID.String()}}
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
	key := connKey(conn)
	msg, added, err := p.build(key, stmts)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	rows, err := conn.QueryxContext(ctx, msg)
	if err != nil {
		if unknownAfter(added, err) {
			discard(conn, key)
		}
		_ = conn.Close()
		return nil, err
	}
	p.record(key, added)
	return &Message{Rows: rows, conn: conn, key: key}, nil
}

// connKey identifies conn's connection: its driver connection, which
// database/sql keeps for the connection's life.
func connKey(conn *sqlx.Conn) any {
	var key any
	_ = conn.Raw(func(dc any) error { key = dc; return nil })
	return key
}

// build writes stmts as one message for the connection known as key: a
// PREPARE for each statement not prepared there yet, then an EXECUTE of
// each with its arguments as literals. It returns the names it prepares.
func (p *preparedStatements) build(key any, stmts []Stmt) (string, []string, error) {
	p.mu.Lock()
	have, _ := p.conns.Get(key)
	p.mu.Unlock()
	var b strings.Builder
	names := make([]string, len(stmts))
	var added []string
	for i, s := range stmts {
		names[i] = statementName(s.Query)
		if _, ok := have[names[i]]; ok || slices.Contains(added, names[i]) {
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
				return "", nil, fmt.Errorf("statement %d, $%d: %w", i+1, j+1, err)
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
	return b.String(), added, nil
}

// record notes the statements a message that went through prepared on
// key's connection: lib/pq reads past every statement that returns no rows
// before the first that does, and the PREPAREs come first, so all of them
// ran.
func (p *preparedStatements) record(key any, added []string) {
	if len(added) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	have, _ := p.conns.Get(key)
	next := make(map[string]struct{}, len(have)+len(added))
	for n := range have {
		next[n] = struct{}{}
	}
	for _, n := range added {
		next[n] = struct{}{}
	}
	p.conns.Add(key, next)
}

// unknownAfter reports whether a message that failed with err leaves its
// connection's statements unknown: some of its PREPAREs may have run (they
// outlive a failed message and its transaction), or one it counted on is
// missing or already there.
func unknownAfter(added []string, err error) bool {
	return len(added) > 0 || isStaleStatement(err)
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
	if n, ok := statementNames.Load(query); ok {
		return n.(string)
	}
	h := sha256.Sum256([]byte(query))
	n := "keel_" + hex.EncodeToString(h[:10])
	if statementCount.Add(1) <= maxStatementNames {
		statementNames.Store(query, n)
	}
	return n
}

// statementNames keeps the names of the queries seen, which are a
// program's constants and their combinations (a list's filters and sorts);
// past maxStatementNames, names are hashed afresh.
var (
	statementNames    sync.Map
	statementCount    atomic.Int64
	maxStatementNames int64 = 10000
)

// isStaleStatement reports a prepared statement missing on the server, or
// already there when it was thought not to be.
func isStaleStatement(err error) bool {
	var pe *pq.Error
	if !errors.As(err, &pe) {
		return false
	}
	return pe.Code == "26000" || pe.Code == "42P05" // invalid_sql_statement_name, duplicate_prepared_statement
}
