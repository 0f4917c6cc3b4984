package file

import (
	"strings"
	"testing"
)

func TestAcceptable(t *testing.T) {
	t.Parallel()
	zip := []byte("PK\x03\x04\x14\x00\x00\x00\x08\x00")
	for _, c := range []struct {
		name, declared string
		body           []byte
		ok             bool
		why            string
	}{
		{"plain text", "text/plain", []byte("hello"), true, ""},
		{"csv confirmed", "text/csv", []byte("a,b,c\n1,2,3\n4,5,6\n"), true, ""},
		{"csv the sniffer cannot confirm", "text/csv", []byte("just one column\n"), true, ""},
		{"json", "application/json", []byte(`{"a": [1, 2, 3]}`), true, ""},
		{"csv declared as text", "text/plain", []byte("a,b,c\n1,2,3\n4,5,6\n"), true, ""},
		{"png", "image/png", []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR"), true, ""},
		{"pdf", "application/pdf", []byte("%PDF-1.7\n"), true, ""},
		{"zip", "application/zip", zip, true, ""},
		{"html is text underneath but not allowed", "text/plain", []byte("<!DOCTYPE html><html></html>"), false, "content type text/html is not allowed"},
		{"svg", "text/plain", []byte(`<svg xmlns="http://www.w3.org/2000/svg"></svg>`), false, "is not allowed"},
		{"text declared as png", "image/png", []byte("hello"), false, "declared as image/png but the content is text/plain"},
		{"png declared as jpeg", "image/jpeg", []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR"), false, "declared as image/jpeg but the content is image/png"},
		{"binary", "application/zip", []byte{0, 1, 2, 3, 0xff, 0xfe}, false, "application/octet-stream is not allowed"},
	} {
		ok, why := acceptable(c.declared, sniff(c.body), DefaultAllowedTypes)
		if ok != c.ok || !strings.Contains(why, c.why) {
			t.Errorf("%s: %v %q (chain %v), want %v %q", c.name, ok, why, sniff(c.body), c.ok, c.why)
		}
	}
}

func TestDisposition(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, want string }{
		{"report.pdf", `attachment; filename="report.pdf"`},
		{`say "hi".txt`, `attachment; filename="say _hi_.txt"; filename*=UTF-8''say%20%22hi%22.txt`},
		{"résumé €.pdf", `attachment; filename="r_sum_ _.pdf"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%E2%82%AC.pdf`},
		{"evil\r\nSet-Cookie: a=b\n.txt", `attachment; filename="evilSet-Cookie: a=b.txt"`},
		{`back\slash;x=1.txt`, `attachment; filename="back_slash;x=1.txt"; filename*=UTF-8''back%5Cslash%3Bx%3D1.txt`},
		{"\n\t", `attachment; filename="download"`},
	} {
		got := Disposition(c.name)
		if got != c.want {
			t.Errorf("Disposition(%q) = %s, want %s", c.name, got, c.want)
		}
		if strings.ContainsAny(got, "\r\n\x00") {
			t.Errorf("Disposition(%q) holds a control character", c.name)
		}
	}
}
