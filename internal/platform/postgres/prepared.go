package postgres

import (
	"context"
	"database/sql"
	"sync"

	"github.com/jmoiron/sqlx"
)

// Prepared is tx for statements run one at a time in a transaction that
// InTxWith opened (every tenant.InOrg transaction): each goes as one
// simple-protocol message, an EXECUTE of a statement prepared on the
// transaction's connection (PREPAREd in the same message the first time
// that connection sees it), with its arguments as literals. That is one
// round trip and no planning, where lib/pq spends two round trips and a
// plan on each statement with arguments (docs/benchmarks.md, "writes
// prepared per connection").
//
// A statement found missing on the connection fails the transaction, and
// InTxWith runs it again on another connection, so a function using
// Prepared may run twice: keep it free of effects outside the transaction.
//
// A transaction InTxWith did not open, a database opened with
// Options.Unprepared, and a statement with an argument Inline cannot write
// as a literal ([]byte, whose type only the server knows: pass JSON as a
// string) go to tx as they are.
func Prepared(tx *sqlx.Tx) sqlx.ExtContext {
	tc, ok := txConns.Load(tx)
	if !ok {
		return tx
	}
	return preparedTx{Tx: tx, tc: tc.(*txConn)}
}

// txConns are the transactions InTxWith has open in prepared mode, by tx.
var txConns sync.Map // *sqlx.Tx → *txConn

// txConn is an open transaction's connection: its key in prepared, and
// whether a statement of the transaction prepared something there. A
// transaction that prepared and then failed leaves the connection's
// statements unknown (a PREPARE outlives its failed transaction, or may
// not have run), so InTxWith drops that connection.
type txConn struct {
	key any
	// A transaction runs on one goroutine at a time.
	added bool // it prepared something on the connection
	stale bool // a statement it counted on was missing, or one it prepared there already
}

// saw notes a stale statement among a statement's errors, whatever the
// caller then makes of the error.
func (tc *txConn) saw(err error) {
	if isStaleStatement(err) {
		tc.stale = true
	}
}

type preparedTx struct {
	*sqlx.Tx
	tc *txConn
}

// message is query with args as one message for the transaction's
// connection, or ok false when an argument has no literal.
func (p preparedTx) message(query string, args []any) (string, bool) {
	return p.messageAll([]Stmt{{Query: query, Args: args}})
}

// messageAll is message for several statements in one message.
func (p preparedTx) messageAll(stmts []Stmt) (string, bool) {
	if hasBytes(stmts) {
		return "", false
	}
	msg, added, err := prepared.build(p.tc.key, stmts)
	if err != nil {
		return "", false
	}
	if len(added) > 0 {
		// Recorded before the outcome is known: if it failed, the
		// transaction failed, and InTxWith drops the connection.
		p.tc.added = true
		prepared.record(p.tc.key, added)
	}
	return msg, true
}

func (p preparedTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if msg, ok := p.message(query, args); ok {
		res, err := p.Tx.ExecContext(ctx, msg)
		p.tc.saw(err)
		return res, err
	}
	return p.Tx.ExecContext(ctx, query, args...)
}

func (p preparedTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if msg, ok := p.message(query, args); ok {
		rows, err := p.Tx.QueryContext(ctx, msg)
		p.tc.saw(err)
		return rows, err
	}
	return p.Tx.QueryContext(ctx, query, args...)
}

func (p preparedTx) QueryxContext(ctx context.Context, query string, args ...any) (*sqlx.Rows, error) {
	if msg, ok := p.message(query, args); ok {
		rows, err := p.Tx.QueryxContext(ctx, msg)
		p.tc.saw(err)
		return rows, err
	}
	return p.Tx.QueryxContext(ctx, query, args...)
}

func (p preparedTx) QueryRowxContext(ctx context.Context, query string, args ...any) *sqlx.Row {
	if msg, ok := p.message(query, args); ok {
		row := p.Tx.QueryRowxContext(ctx, msg)
		// A missing statement fails the message before any row:
		// lib/pq returns it from the query, which Row keeps for Scan.
		p.tc.saw(row.Err())
		return row
	}
	return p.Tx.QueryRowxContext(ctx, query, args...)
}

// ExecAll runs stmts in order on ext, which returns no rows the caller
// wants, as one message (one round trip), each statement with its own
// snapshot, as if sent one by one: on a Prepared transaction as EXECUTEs,
// on anything else inlined (as Options.Unprepared does). Statements with
// bytes among their arguments go one at a time. A statement's error stops
// the rest.
func ExecAll(ctx context.Context, ext sqlx.ExtContext, stmts ...Stmt) error {
	if p, ok := ext.(preparedTx); ok {
		if msg, ok := p.messageAll(stmts); ok {
			_, err := p.Tx.ExecContext(ctx, msg)
			p.tc.saw(err)
			return err
		}
	} else if !hasBytes(stmts) {
		msg, err := inlineAll(stmts)
		if err != nil {
			return err
		}
		_, err = ext.ExecContext(ctx, msg)
		return err
	}
	for _, s := range stmts {
		if _, err := ext.ExecContext(ctx, s.Query, s.Args...); err != nil {
			return err
		}
	}
	return nil
}

// hasBytes reports an argument Inline would write as bytea, which a jsonb
// or text parameter does not take; lib/pq sends bytes for the parameter's
// type.
func hasBytes(stmts []Stmt) bool {
	for _, s := range stmts {
		for _, a := range s.Args {
			if _, ok := a.([]byte); ok {
				return true
			}
		}
	}
	return false
}
