package queueui

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Redacted replaces a secret in what the queue UI shows.
const Redacted = "[redacted]"

// Redact renders a task payload (or result) for the queue UI with its
// secrets replaced by Redacted. Payloads should never carry a usable secret
// (links are minted by the worker, tokens are stored as hashes); this is a
// second line, so a mistake in a payload is not also shown to everyone who
// may watch the queues. In JSON, the value of every key that names a
// secret (token, secret, password, link, URL, key, cookie, signature,
// credential, authorization, but not an ID such as token_id) is replaced,
// and in every string, and in a payload that is not JSON, URL query
// parameters and key=value pairs that name a secret and URL user
// passwords are. Bytes that are not printable text are not shown.
func Redact(b []byte) string {
	if !printable(b) {
		return "non-printable bytes"
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return redactText(string(b))
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(redactValue(v)); err != nil {
		return redactText(string(b))
	}
	return strings.TrimSuffix(out.String(), "\n")
}

func redactValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if secretName(k) {
				v[k] = Redacted
			} else {
				v[k] = redactValue(x)
			}
		}
		return v
	case []any:
		for i, x := range v {
			v[i] = redactValue(x)
		}
		return v
	case string:
		return redactText(v)
	}
	return v
}

var (
	nonAlnum    = regexp.MustCompile(`[^a-z0-9]+`)
	secretWords = regexp.MustCompile(`token|secret|passw|pwd|link|url|key|cookie|signature|credential|authorization|bearer`)
	// secretParam is a key=value pair (a URL query parameter, a form
	// field, a log-style pair) whose key names a secret.
	secretParam = regexp.MustCompile(`(?i)([A-Za-z0-9_\-.]*(?:token|secret|passw|pwd|key|signature|sig|code|credential|auth)[A-Za-z0-9_\-.]*=)[^&\s"'<>]+`)
	// userinfo is the user:password@ of a URL.
	userinfo = regexp.MustCompile(`(://[^/\s:@]*:)[^/\s@]+@`)
	// bearer is an Authorization header value.
	bearer = regexp.MustCompile(`(?i)(bearer\s+)[A-Za-z0-9\-._~+/]+=*`)
)

// secretName reports whether a JSON key names a secret: it holds one of
// secretWords and does not end in "id" or "ids" (token_id names a row, it
// opens nothing).
func secretName(k string) bool {
	words := nonAlnum.Split(strings.ToLower(camelToSnake(k)), -1)
	for len(words) > 0 && words[len(words)-1] == "" {
		words = words[:len(words)-1]
	}
	if n := len(words); n > 1 && (words[n-1] == "id" || words[n-1] == "ids") {
		return false
	}
	return secretWords.MatchString(strings.Join(words, ""))
}

// camelToSnake puts an underscore before each upper-case letter that
// follows a lower-case one, so "tokenID" ends in the word "id".
func camelToSnake(s string) string {
	var b strings.Builder
	prev := rune(0)
	for _, r := range s {
		if unicode.IsUpper(r) && unicode.IsLower(prev) {
			b.WriteByte('_')
		}
		b.WriteRune(r)
		prev = r
	}
	return b.String()
}

func redactText(s string) string {
	s = secretParam.ReplaceAllString(s, "${1}"+Redacted)
	s = userinfo.ReplaceAllString(s, "${1}"+Redacted+"@")
	return bearer.ReplaceAllString(s, "${1}"+Redacted)
}

// printable is asynqmon's test for showing bytes as text.
func printable(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if !unicode.IsPrint(r) && !unicode.IsSpace(r) {
			return false
		}
	}
	return true
}
