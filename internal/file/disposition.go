package file

import (
	"strings"
	"unicode"
)

// Disposition is the Content-Disposition of a download of a file named
// name (RFC 6266): attachment, so a browser saves rather than renders it,
// with an ASCII fallback filename (quotes, backslashes and non-ASCII
// replaced by "_") and, when that lost anything, the exact name as
// filename* in RFC 8187's UTF-8 percent-encoding. Control characters
// (newlines included) are dropped first, so no name can end the header or
// add another.
func Disposition(name string) string {
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	if name == "" {
		name = "download"
	}
	var ascii strings.Builder
	for _, r := range name {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			ascii.WriteByte('_')
		} else {
			ascii.WriteRune(r)
		}
	}
	d := `attachment; filename="` + ascii.String() + `"`
	if ascii.String() != name {
		d += "; filename*=UTF-8''" + encode8187(name)
	}
	return d
}

// encode8187 percent-encodes every byte of s but RFC 8187's attr-char.
func encode8187(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.IndexByte("!#$&+-.^_`|~", c) >= 0:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}
