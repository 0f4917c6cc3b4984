package file

import (
	"slices"
	"strings"

	"github.com/gabriel-vasile/mimetype"
)

// sniffLen is how many leading bytes the type is sniffed from (mimetype's
// default read limit).
const sniffLen = 3072

// Content types are sniffed with gabriel-vasile/mimetype rather than
// net/http.DetectContentType: it knows more formats (CSV, JSON, the
// zip-based office formats) and places each in a tree (docx under zip, csv
// under text/plain), which is what "compatible with the declared type"
// needs; DetectContentType calls CSV and JSON plain text and stops at 512
// bytes.

// sniff names the type of a file from its first bytes, with its ancestors
// in mimetype's tree (most specific first).
func sniff(head []byte) []string {
	var chain []string
	for m := mimetype.Detect(head); m != nil; m = m.Parent() {
		mt, _, _ := strings.Cut(m.String(), ";")
		chain = append(chain, strings.TrimSpace(mt))
	}
	return chain
}

// acceptable reports whether a file declared as declared whose bytes sniff
// as chain may be kept under allowed, and why not.
//
// The sniffed type must be allowed itself or through a container ancestor
// (a .docx is a zip): text/plain and the octet-stream root do not lend
// their permission, so HTML or SVG (text underneath) pass only if listed
// themselves. The declared type must be the sniffed one or an ancestor of
// it; and plain text may be declared as any allowed text format (CSV or
// JSON the sniffer could not confirm from the first bytes).
func acceptable(declared string, chain, allowed []string) (bool, string) {
	if len(chain) == 0 {
		return false, "the content type could not be determined"
	}
	ok := false
	for _, t := range chain {
		if t == "application/octet-stream" || (t == "text/plain" && t != chain[0]) {
			break
		}
		if slices.Contains(allowed, t) {
			ok = true
			break
		}
	}
	if !ok {
		return false, "content type " + chain[0] + " is not allowed"
	}
	if slices.Contains(chain, declared) || (chain[0] == "text/plain" && isText(declared)) {
		return true, ""
	}
	return false, "declared as " + declared + " but the content is " + chain[0]
}

func isText(t string) bool {
	return strings.HasPrefix(t, "text/") || t == "application/json"
}
