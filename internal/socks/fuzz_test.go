package socks

import (
	"encoding/binary"
	"testing"
)

// FuzzParseReply checks that no proxy answer can crash the parser and that
// what it accepts is self-consistent. The committed corpus in
// testdata/fuzz/FuzzParseReply holds tor's real replies (success, every
// extended code) and edge cases; run longer with
// go test -run=^$ -fuzz=FuzzParseReply -fuzztime=30s ./internal/socks/
func FuzzParseReply(f *testing.F) {
	f.Add([]byte{5, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{5, 0xF6, 0, 1, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{5, 0, 0, 3, 1, 'a', 0, 80})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseReply(b)
		if err != nil {
			return
		}
		n, err := replyLen(b)
		if err != nil || n != len(b) || b[0] != socksVersion || r.code != b[1] {
			t.Fatalf("accepted %x but replyLen = %d, %v; reply %+v", b, n, err, r)
		}
		if r.bindPort != binary.BigEndian.Uint16(b[len(b)-2:]) {
			t.Fatalf("port %d from %x", r.bindPort, b)
		}
		if b[3] == atypDomain && len(r.bindDomain) != int(b[4]) {
			t.Fatalf("domain %q from %x", r.bindDomain, b)
		}
		_ = ReplyReason(r.code)
		_ = classifyReply(r.code, true)
	})
}
