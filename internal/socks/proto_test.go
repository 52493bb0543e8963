package socks

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Tor's own v3 test vector (rend-spec-v3; docs/spec-notes.md).
const vectorOnion = "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid.onion"

func TestAppendConnect(t *testing.T) {
	long := strings.Repeat("a", 255)
	tests := []struct {
		name    string
		host    string
		port    uint16
		want    string // hex
		wantErr bool
	}{
		{"onion as domain", vectorOnion, 80,
			"05 01 00 03 3e" + hex.EncodeToString([]byte(vectorOnion)) + "0050", false},
		{"dns name never resolved", "leak-check.invalid", 443,
			"05 01 00 03 12" + hex.EncodeToString([]byte("leak-check.invalid")) + "01bb", false},
		{"ipv4 literal", "127.0.0.1", 9050, "05 01 00 01 7f000001 235a", false},
		{"ipv6 literal", "::1", 1, "05 01 00 04 00000000000000000000000000000001 0001", false},
		{"ipv4-mapped stays ipv6", "::ffff:10.0.0.1", 65535, "05 01 00 04 00000000000000000000ffff0a000001 ffff", false},
		{"digits but not an IP", "1.2.3", 80, "05 01 00 03 05" + hex.EncodeToString([]byte("1.2.3")) + "0050", false},
		{"255-byte name", long, 7, "05 01 00 03 ff" + hex.EncodeToString([]byte(long)) + "0007", false},
		{"256-byte name", long + "a", 7, "", true},
		{"empty host", "", 80, "", true},
		{"ipv6 zone", "fe80::1%eth0", 80, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := appendConnect(nil, tt.host, tt.port)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("appendConnect(%q) = %x, want error", tt.host, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := mustHex(t, tt.want); !bytes.Equal(got, want) {
				t.Errorf("appendConnect(%q)\n got %x\nwant %x", tt.host, got, want)
			}
		})
	}
}

func TestGreetingAndAuth(t *testing.T) {
	if got := appendGreeting(nil, false); !bytes.Equal(got, []byte{5, 1, 0}) {
		t.Errorf("greeting without auth = %x", got)
	}
	if got := appendGreeting(nil, true); !bytes.Equal(got, []byte{5, 1, 2}) {
		t.Errorf("greeting with auth = %x", got)
	}
	if got, want := appendUserPass(nil, "ab", "c"), []byte{1, 2, 'a', 'b', 1, 'c'}; !bytes.Equal(got, want) {
		t.Errorf("appendUserPass = %x, want %x", got, want)
	}
}

func TestParseMethodSelection(t *testing.T) {
	tests := []struct {
		in        [2]byte
		offered   byte
		ok        bool
		malformed bool
	}{
		{[2]byte{5, 0}, methodNoAuth, true, false},
		{[2]byte{5, 2}, methodUserPass, true, false},
		{[2]byte{5, 0xFF}, methodUserPass, false, false},
		{[2]byte{5, 0xFF}, methodNoAuth, false, false},
		{[2]byte{5, 0}, methodUserPass, false, true}, // proxy ignored our only method
		{[2]byte{4, 0}, methodNoAuth, false, true},   // SOCKS4 reply
		{[2]byte{'H', 'T'}, methodNoAuth, false, true},
	}
	for _, tt := range tests {
		err := parseMethodSelection(tt.in, tt.offered)
		if (err == nil) != tt.ok || errors.Is(err, errMalformed) != tt.malformed {
			t.Errorf("parseMethodSelection(%x, %d) = %v", tt.in, tt.offered, err)
		}
	}
}

func TestParseUserPassReply(t *testing.T) {
	for in, ok := range map[[2]byte]bool{{1, 0}: true, {1, 1}: false, {5, 0}: false} {
		if err := parseUserPassReply(in); (err == nil) != ok {
			t.Errorf("parseUserPassReply(%x) = %v", in, err)
		}
	}
}

func TestParseReply(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		want   reply
		errSub string
	}{
		{"tor success", "05 00 00 01 00000000 0000", reply{code: 0, bindAddr: netip.MustParseAddr("0.0.0.0")}, ""},
		{"tor F0", "05 f0 00 01 00000000 0000", reply{code: 0xF0, bindAddr: netip.MustParseAddr("0.0.0.0")}, ""},
		{"ipv6 bind", "05 00 00 04 20010db8000000000000000000000001 1f90",
			reply{bindAddr: netip.MustParseAddr("2001:db8::1"), bindPort: 8080}, ""},
		{"domain bind", "05 04 00 03 03 616263 0016", reply{code: 4, bindDomain: "abc", bindPort: 22}, ""},
		{"nonzero rsv tolerated", "05 00 ff 01 7f000001 0050",
			reply{bindAddr: netip.MustParseAddr("127.0.0.1"), bindPort: 80}, ""},
		{"socks4 version", "00 5a 0000 00000000 00", reply{}, "version"},
		{"bad atyp", "05 00 00 02 00000000 0000", reply{}, "address type"},
		{"short", "05 00 00", reply{}, "header"},
		{"truncated ipv4", "05 00 00 01 000000", reply{}, "want 10"},
		{"trailing byte", "05 00 00 01 00000000 0000 00", reply{}, "want 10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseReply(mustHex(t, tt.in))
			if tt.errSub != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errSub) || !errors.Is(err, errMalformed) {
					t.Fatalf("parseReply = %+v, %v; want error containing %q", got, err, tt.errSub)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("parseReply = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestClassifyReply(t *testing.T) {
	tests := []struct {
		code  byte
		onion bool
		kind  error
		retry bool
	}{
		{ReplyGeneralFailure, false, ErrCircuitBuildFailed, true},
		{ReplyGeneralFailure, true, ErrCircuitBuildFailed, true},
		{ReplyNotAllowed, false, ErrCircuitBuildFailed, false},
		{ReplyNetworkUnreachable, false, ErrCircuitBuildFailed, true},
		{ReplyHostUnreachable, false, ErrCircuitBuildFailed, true},
		{ReplyHostUnreachable, true, ErrOnionServiceUnreachable, true},
		{ReplyConnectionRefused, false, ErrCircuitBuildFailed, true},
		{ReplyConnectionRefused, true, ErrOnionServiceUnreachable, true},
		{ReplyTTLExpired, false, ErrCircuitBuildFailed, true},
		{ReplyTTLExpired, true, ErrOnionServiceUnreachable, true},
		{ReplyCommandNotSupported, false, ErrSocksProxy, false},
		{ReplyAddrNotSupported, false, ErrSocksProxy, false},
		{ReplyOnionDescNotFound, true, ErrOnionServiceUnreachable, true},
		{ReplyOnionDescInvalid, true, ErrOnionServiceUnreachable, true},
		{ReplyOnionIntroFailed, true, ErrOnionServiceUnreachable, true},
		{ReplyOnionRendezvousFailed, true, ErrOnionServiceUnreachable, true},
		{ReplyOnionAuthMissing, true, ErrOnionAuth, false},
		{ReplyOnionAuthWrong, true, ErrOnionAuth, false},
		{ReplyOnionBadAddress, true, ErrBadAddress, false},
		{ReplyOnionIntroTimedOut, true, ErrOnionServiceUnreachable, true},
		{0x09, false, ErrSocksProxy, false},
		{0xF8, true, ErrSocksProxy, false},
		{0xFF, true, ErrSocksProxy, false},
	}
	for _, tt := range tests {
		c := classifyReply(tt.code, tt.onion)
		if c.kind != tt.kind || (c.retryAfter > 0) != tt.retry || c.hint == "" {
			t.Errorf("classifyReply(0x%02x, onion=%v) = %v, %v, %q; want %v, retry %v",
				tt.code, tt.onion, c.kind, c.retryAfter, c.hint, tt.kind, tt.retry)
		}
		if strings.HasPrefix(ReplyReason(tt.code), "unknown") != (tt.code == 0x09 || tt.code >= 0xF8) {
			t.Errorf("ReplyReason(0x%02x) = %q", tt.code, ReplyReason(tt.code))
		}
	}
}

func TestRetryAfter(t *testing.T) {
	f0 := &Error{Kind: ErrOnionServiceUnreachable, Err: &ReplyError{Code: 0xF0}, retryAfter: 5 * time.Second}
	tests := []struct {
		err  error
		want time.Duration
	}{
		{f0, 5 * time.Second},
		{errors.Join(errors.New("transport"), f0), 5 * time.Second}, // wrapped further up
		{&Error{Kind: ErrOnionAuth}, 0},
		{&Error{Kind: ErrDaemonNotRunning}, 0},
		{ErrCircuitBuildFailed, 5 * time.Second}, // a bare kind from elsewhere
		{ErrBadAddress, 0},
		{errors.New("other"), 0},
		{nil, 0},
	}
	for _, tt := range tests {
		if got := RetryAfter(tt.err); got != tt.want || Retryable(tt.err) != (tt.want > 0) {
			t.Errorf("RetryAfter(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	e := &Error{
		Kind: ErrOnionServiceUnreachable, Addr: vectorOnion + ":80", Proxy: "127.0.0.1:9050",
		Err:  &ReplyError{Code: 0xF0, Reason: ReplyReason(0xF0)},
		Hint: classifyReply(0xF0, true).hint,
	}
	want := "socks: dial " + vectorOnion + ":80 via 127.0.0.1:9050: onion service descriptor not found (SOCKS reply 0xf0): " +
		"the peer is offline or has not published its onion service yet; retry in a few seconds"
	if e.Error() != want {
		t.Errorf("Error() =\n%q\nwant\n%q", e.Error(), want)
	}
	var re *ReplyError
	if !errors.Is(e, ErrOnionServiceUnreachable) || !errors.As(e, &re) || re.Code != 0xF0 {
		t.Errorf("errors.Is/As do not see kind and reply in %v", e)
	}
	if errors.Is(e, ErrCircuitBuildFailed) {
		t.Error("error matches a second kind")
	}
}

func TestCheckIsolation(t *testing.T) {
	for s, ok := range map[string]bool{
		"":                       true,
		"peer-1":                 true,
		"<torS0X>0":              false, // we never use tor's extended scheme
		"<torS0X>1":              false,
		"<tor":                   true,
		strings.Repeat("x", 255): true,
		strings.Repeat("x", 256): false,
	} {
		if err := checkIsolation(s); (err == nil) != ok {
			t.Errorf("checkIsolation(%.20q) = %v, want ok=%v", s, err, ok)
		}
	}
}

func TestIsOnion(t *testing.T) {
	for h, want := range map[string]bool{
		vectorOnion:                  true,
		strings.ToUpper(vectorOnion): true,
		vectorOnion + ".":            true,
		"x.onion":                    true,
		".onion":                     false,
		"onion":                      false,
		"example.com":                false,
		"127.0.0.1":                  false,
		"notonion":                   false,
		"foo.onion.example.com":      false,
	} {
		if isOnion(h) != want {
			t.Errorf("isOnion(%q) = %v", h, !want)
		}
	}
}

func TestForPeer(t *testing.T) {
	base := &Dialer{ProxyAddr: "127.0.0.1:9050", Timeout: time.Second}
	a1, a2, b := base.ForPeer("peer-a"), base.ForPeer("peer-a"), base.ForPeer("peer-b")
	if a1.Isolation != a2.Isolation {
		t.Error("same peer, different credentials: its streams would not share circuits")
	}
	if a1.Isolation == b.Isolation {
		t.Error("different peers share a credential: no isolation")
	}
	if a1.ProxyAddr != base.ProxyAddr || a1.Timeout != base.Timeout || base.Isolation != "" {
		t.Error("ForPeer must copy the dialer and leave it unchanged")
	}
	if len(a1.Isolation) != 32 || strings.Contains(a1.Isolation, "peer-a") || checkIsolation(a1.Isolation) != nil {
		t.Errorf("credential %q: want 32 hex chars, unlinkable to the id", a1.Isolation)
	}
}

// BenchmarkProtocol is the pure encode/decode cost of one CONNECT.
func BenchmarkProtocol(b *testing.B) {
	buf := make([]byte, 0, 128)
	rep := []byte{5, 0xF0, 0, 1, 0, 0, 0, 0, 0, 0}
	b.ReportAllocs()
	for b.Loop() {
		var err error
		buf = appendGreeting(buf[:0], true)
		buf = appendUserPass(buf, "0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef")
		if buf, err = appendConnect(buf, vectorOnion, 80); err != nil {
			b.Fatal(err)
		}
		if _, err := parseReply(rep); err != nil {
			b.Fatal(err)
		}
	}
}

// TestNoteFailureOncePerCount: concurrent failures of dials that sent the
// same credential advance the peer's count once, so the retry after them
// does not skip past circuits that were never tried; a failure reported
// late, for an older count, does not advance it again. A table past
// maxFailures is dropped.
func TestNoteFailureOncePerCount(t *testing.T) {
	d := (&Dialer{ProxyAddr: "127.0.0.1:9"}).ForPeer("concurrent-failures")
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() { defer wg.Done(); d.noteFailure(0) }()
	}
	wg.Wait()
	cred, n := d.credential()
	if n != 1 || cred == d.Isolation || cred != retryCredential(d.Isolation, 1) {
		t.Fatalf("after 20 concurrent failures of count 0: count %d, credential %s", n, cred)
	}
	d.noteFailure(0) // late report of the old count
	if _, n := d.credential(); n != 1 {
		t.Fatalf("a late failure of count 0 moved the count to %d", n)
	}
	d.noteFailure(1)
	if _, n := d.credential(); n != 2 {
		t.Fatalf("count %d after a failure of count 1, want 2", n)
	}
	if c := retryCredential(d.Isolation, 2); len(c) != 32 || strings.HasPrefix(c, "<") {
		t.Fatalf("derived credential %q", c)
	}

	for i := range maxFailures + 1 {
		(&Dialer{ProxyAddr: "127.0.0.1:9"}).ForPeer(fmt.Sprint("many-", i)).noteFailure(0)
	}
	if nFailures.Load() > maxFailures {
		t.Fatalf("failure table holds %d entries, over %d", nFailures.Load(), maxFailures)
	}
}
