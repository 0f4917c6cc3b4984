package postgres

import (
	"database/sql/driver"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Inline returns query with its $n placeholders replaced by args written as
// typed SQL literals (quoted by QuoteLiteral), for statements sent in one
// simple-protocol message with others, which takes no parameters. Quoted
// strings, quoted identifiers and comments of query are left alone. The
// types are those Keel binds: strings, UUIDs (and pointers to them), times,
// integers, booleans, byte slices and nil; anything else is an error, never
// a guess.
func Inline(query string, args []any) (string, error) {
	lits := make([]string, len(args))
	for i, a := range args {
		l, err := literal(a)
		if err != nil {
			return "", fmt.Errorf("inline $%d: %w", i+1, err)
		}
		lits[i] = l
	}
	var b strings.Builder
	b.Grow(len(query) + 64*len(args))
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(query) {
				if query[j] == c {
					if j+1 < len(query) && query[j+1] == c { // a doubled quote
						j += 2
						continue
					}
					break
				}
				j++
			}
			if j >= len(query) {
				return "", fmt.Errorf("inline: unterminated %c", c)
			}
			b.WriteString(query[i : j+1])
			i = j
		case c == '-' && i+1 < len(query) && query[i+1] == '-':
			j := strings.IndexByte(query[i:], '\n')
			if j < 0 {
				j = len(query) - i
			}
			b.WriteString(query[i : i+j])
			i += j - 1
		case c == '/' && i+1 < len(query) && query[i+1] == '*':
			// Block comments nest in PostgreSQL.
			depth, j := 1, i+2
			for j < len(query) && depth > 0 {
				switch {
				case strings.HasPrefix(query[j:], "/*"):
					depth, j = depth+1, j+2
				case strings.HasPrefix(query[j:], "*/"):
					depth, j = depth-1, j+2
				default:
					j++
				}
			}
			if depth > 0 {
				return "", fmt.Errorf("inline: unterminated comment")
			}
			b.WriteString(query[i:j])
			i = j - 1
		case c == '$' && i+1 < len(query) && query[i+1] >= '0' && query[i+1] <= '9':
			j := i + 1
			for j < len(query) && query[j] >= '0' && query[j] <= '9' {
				j++
			}
			n, _ := strconv.Atoi(query[i+1 : j])
			if n < 1 || n > len(lits) {
				return "", fmt.Errorf("inline: $%d without an argument (%d given)", n, len(lits))
			}
			b.WriteString(lits[n-1])
			i = j - 1
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func literal(a any) (string, error) {
	switch v := a.(type) {
	case nil:
		return "NULL", nil
	case string:
		if strings.IndexByte(v, 0) >= 0 {
			return "", fmt.Errorf("a string with a NUL byte")
		}
		return QuoteLiteral(v), nil
	case uuid.UUID:
		return "'" + v.String() + "'::uuid", nil
	case *uuid.UUID:
		if v == nil {
			return "NULL::uuid", nil
		}
		return "'" + v.String() + "'::uuid", nil
	case time.Time:
		return "'" + v.UTC().Format(time.RFC3339Nano) + "'::timestamptz", nil
	case *time.Time:
		if v == nil {
			return "NULL::timestamptz", nil
		}
		return "'" + v.UTC().Format(time.RFC3339Nano) + "'::timestamptz", nil
	case int:
		return strconv.Itoa(v), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case int32:
		return strconv.FormatInt(int64(v), 10), nil
	case bool:
		return strconv.FormatBool(v), nil
	case []byte:
		return `'\x` + hex.EncodeToString(v) + `'::bytea`, nil
	case driver.Valuer:
		x, err := v.Value()
		if err != nil {
			return "", err
		}
		if _, again := x.(driver.Valuer); again {
			return "", fmt.Errorf("a %T whose value is a Valuer", a)
		}
		return literal(x)
	}
	return "", fmt.Errorf("no literal for a %T", a)
}
