package socks_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/socks"
	"github.com/mmogit/mmogit/internal/socks/sockstest"
)

const vectorOnion = "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid.onion"

// serveTCP listens on loopback until the test ends and runs handle, in
// the accept loop, for every connection.
func serveTCP(t *testing.T, handle func(net.Conn)) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			handle(c)
		}
	}()
	return ln
}

// echoListener is a real TCP destination that echoes one connection.
func echoListener(t *testing.T) net.Listener {
	return serveTCP(t, func(c net.Conn) { go func() { io.Copy(c, c); c.Close() }() })
}

func TestDialRouteAndIsolation(t *testing.T) {
	srv := sockstest.NewServer(t)
	srv.Route(vectorOnion, echoListener(t).Addr().String())
	base := &socks.Dialer{ProxyAddr: srv.Addr(), Timeout: 5 * time.Second}

	for _, peer := range []string{"peer-a", "peer-b", "peer-a"} {
		c, err := base.ForPeer(peer).DialContext(t.Context(), "tcp", vectorOnion+":4242")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("echo through proxy: %q, %v", buf, err)
		}
		c.Close()
	}
	reqs := srv.Requests()
	if len(reqs) != 3 {
		t.Fatalf("got %d requests, want 3", len(reqs))
	}
	for _, r := range reqs {
		if r.Host != vectorOnion || r.Port != 4242 || r.AddrType != 0x03 || r.Username == "" || r.Username != r.Password {
			t.Errorf("request %+v: want domain %s:4242 with a credential", r, vectorOnion)
		}
	}
	if reqs[0].Username == reqs[1].Username {
		t.Error("peers a and b used the same credential: tor would share their circuits")
	}
	if reqs[0].Username != reqs[2].Username {
		t.Error("peer a used two credentials")
	}
}

// TestNeverResolves: a DNS name reaches the proxy as a domain name (ATYP
// 0x03). The package has no resolver call at all; this guards against one
// creeping in through net.Dial of the destination.
func TestNeverResolves(t *testing.T) {
	srv := sockstest.NewServer(t)
	srv.Reply("leak-check.invalid", socks.ReplySucceeded)
	d := &socks.Dialer{ProxyAddr: srv.Addr()}
	c, err := d.DialContext(t.Context(), "tcp", "leak-check.invalid:80")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	want := sockstest.Request{Host: "leak-check.invalid", Port: 80, AddrType: 0x03}
	if got := srv.Requests(); len(got) != 1 || got[0] != want {
		t.Fatalf("requests = %+v, want [%+v]", got, want)
	}
}

func TestIPLiteralsSentAsAddresses(t *testing.T) {
	srv := sockstest.NewServer(t)
	srv.Reply("127.0.0.1", socks.ReplySucceeded)
	srv.Reply("::1", socks.ReplySucceeded)
	d := &socks.Dialer{ProxyAddr: srv.Addr()}
	for _, addr := range []string{"127.0.0.1:1", "[::1]:2"} {
		c, err := d.DialContext(t.Context(), "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	got := srv.Requests()
	if len(got) != 2 || got[0].AddrType != 0x01 || got[1].AddrType != 0x04 || got[1].Host != "::1" {
		t.Fatalf("requests = %+v", got)
	}
}

func TestReplyCodes(t *testing.T) {
	srv := sockstest.NewServer(t)
	tests := []struct {
		host  string
		code  byte
		kind  error
		retry bool
	}{
		{"f0.onion", 0xF0, socks.ErrOnionServiceUnreachable, true},
		{"f1.onion", 0xF1, socks.ErrOnionServiceUnreachable, true},
		{"f2.onion", 0xF2, socks.ErrOnionServiceUnreachable, true},
		{"f3.onion", 0xF3, socks.ErrOnionServiceUnreachable, true},
		{"f4.onion", 0xF4, socks.ErrOnionAuth, false},
		{"f5.onion", 0xF5, socks.ErrOnionAuth, false},
		{"f6.onion", 0xF6, socks.ErrBadAddress, false},
		{"f7.onion", 0xF7, socks.ErrOnionServiceUnreachable, true},
		{"plain-port.onion", 0x04, socks.ErrOnionServiceUnreachable, true},
		{"gone.onion", 0x06, socks.ErrOnionServiceUnreachable, true},
		{"example.com", 0x01, socks.ErrCircuitBuildFailed, true},
		{"example.net", 0x04, socks.ErrCircuitBuildFailed, true},
		{"example.org", 0x06, socks.ErrCircuitBuildFailed, true},
		{"policy.example", 0x02, socks.ErrCircuitBuildFailed, false},
		{"cmd.example", 0x07, socks.ErrSocksProxy, false},
		{"weird.example", 0x42, socks.ErrSocksProxy, false},
	}
	for _, tt := range tests {
		srv.Reply(tt.host, tt.code)
	}
	d := &socks.Dialer{ProxyAddr: srv.Addr(), Isolation: "t"}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			c, err := d.DialContext(t.Context(), "tcp", tt.host+":80")
			if err == nil {
				c.Close()
				t.Fatal("dial succeeded")
			}
			var re *socks.ReplyError
			if !errors.Is(err, tt.kind) || !errors.As(err, &re) || re.Code != tt.code || socks.Retryable(err) != tt.retry {
				t.Errorf("err = %v (retryable %v); want kind %v, code 0x%02x, retryable %v",
					err, socks.Retryable(err), tt.kind, tt.code, tt.retry)
			}
			if !strings.Contains(err.Error(), tt.host) || !strings.Contains(err.Error(), srv.Addr()) {
				t.Errorf("message lacks destination or proxy: %v", err)
			}
		})
	}
}

func TestRejectedBeforeDialing(t *testing.T) {
	srv := sockstest.NewServer(t)
	d := &socks.Dialer{ProxyAddr: srv.Addr()}
	for _, tc := range []struct{ network, addr string }{
		{"tcp", strings.Repeat("a", 250) + ".onion:80"},
		{"tcp", "no-port.onion"},
		{"tcp", vectorOnion + ":0"},
		{"tcp", vectorOnion + ":65536"},
		{"tcp", ":80"},
		{"udp", vectorOnion + ":80"},
		{"tcp", "[fe80::1%lo]:80"},
	} {
		_, err := d.DialContext(t.Context(), tc.network, tc.addr)
		if !errors.Is(err, socks.ErrBadAddress) || socks.Retryable(err) {
			t.Errorf("DialContext(%s, %.30q) = %v, want ErrBadAddress", tc.network, tc.addr, err)
		}
	}
	bad := &socks.Dialer{ProxyAddr: srv.Addr(), Isolation: "<torS0X>1"}
	if _, err := bad.DialContext(t.Context(), "tcp", vectorOnion+":80"); err == nil {
		t.Error(`isolation "<torS0X>1" accepted`)
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("%d requests reached the proxy", n)
	}
}

func TestDaemonNotRunning(t *testing.T) {
	// A port that was just free: nothing listens.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	d := &socks.Dialer{ProxyAddr: addr}
	_, err = d.DialContext(t.Context(), "tcp", vectorOnion+":80")
	if !errors.Is(err, socks.ErrDaemonNotRunning) || socks.Retryable(err) || !strings.Contains(err.Error(), "mmogit tor start") {
		t.Errorf("refused: %v", err)
	}

	// A unix socket path that does not exist.
	d = &socks.Dialer{ProxyAddr: "unix:" + filepath.Join(t.TempDir(), "socks")}
	if _, err = d.DialContext(t.Context(), "tcp", vectorOnion+":80"); !errors.Is(err, socks.ErrDaemonNotRunning) {
		t.Errorf("missing unix socket: %v", err)
	}

	// Something accepts and hangs up at once: EOF before any reply.
	d = &socks.Dialer{ProxyAddr: rawProxy(t, nil)}
	if _, err = d.DialContext(t.Context(), "tcp", vectorOnion+":80"); !errors.Is(err, socks.ErrDaemonNotRunning) || errors.Is(err, socks.ErrSocksProxy) {
		t.Errorf("EOF before reply: %v", err)
	}
}

// TestTorDiesMidDial: tor exiting after the CONNECT was sent, before any
// reply, closes (or resets) the connection. That is tor gone, worth a retry
// once it is back — not a proxy that speaks something other than SOCKS.
func TestTorDiesMidDial(t *testing.T) {
	srv := sockstest.NewServer(t)
	srv.Hangup("fin.onion", false)
	srv.Hangup("rst.onion", true)
	for _, host := range []string{"fin.onion", "rst.onion"} {
		for _, iso := range []string{"", "peer"} {
			d := &socks.Dialer{ProxyAddr: srv.Addr(), Isolation: iso}
			_, err := d.DialContext(t.Context(), "tcp", host+":80")
			if !errors.Is(err, socks.ErrDaemonNotRunning) || errors.Is(err, socks.ErrSocksProxy) || !socks.Retryable(err) {
				t.Errorf("%s isolation %q: %v (retryable %v), want ErrDaemonNotRunning, retryable",
					host, iso, err, socks.Retryable(err))
				continue
			}
			if !strings.Contains(err.Error(), "after CONNECT") || !strings.Contains(err.Error(), "tor is running") {
				t.Errorf("%s: message does not say what happened and what to do: %v", host, err)
			}
		}
	}
	if n := len(srv.Requests()); n != 4 {
		t.Errorf("proxy saw %d CONNECTs, want 4", n)
	}
}

// scriptedProxy plays the server side of a no-auth handshake, reads the
// CONNECT and answers reply (nil: close).
func scriptedProxy(t *testing.T, reply []byte) string {
	return serveTCP(t, func(c net.Conn) {
		b := make([]byte, 3)
		io.ReadFull(c, b) // 05 01 00
		c.Write([]byte{0x05, 0x00})
		hdr := make([]byte, 5)
		io.ReadFull(c, hdr) // 05 01 00 03 len
		io.ReadFull(c, make([]byte, int(hdr[4])+2))
		c.Write(reply)
		c.Close()
	}).Addr().String()
}

// TestGarbageVersusHangup keeps the two apart at the CONNECT step: a
// truncated tor reply is a hang-up, an answer that does not parse is
// not a SOCKS proxy.
func TestGarbageVersusHangup(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply []byte
		kind  error
	}{
		{"no reply", nil, socks.ErrDaemonNotRunning},
		{"half a reply", []byte{0x05, 0x00, 0x00}, socks.ErrDaemonNotRunning},
		{"http after connect", []byte("HTTP/1.0 400 Bad Request\r\n\r\n"), socks.ErrSocksProxy},
		{"bad address type", []byte{0x05, 0x00, 0x00, 0x09, 0, 0, 0, 0, 0, 0}, socks.ErrSocksProxy},
	} {
		d := &socks.Dialer{ProxyAddr: scriptedProxy(t, tc.reply)}
		_, err := d.DialContext(t.Context(), "tcp", vectorOnion+":80")
		other := socks.ErrSocksProxy
		if tc.kind == socks.ErrSocksProxy {
			other = socks.ErrDaemonNotRunning
		}
		if !errors.Is(err, tc.kind) || errors.Is(err, other) || socks.Retryable(err) != (tc.kind == socks.ErrDaemonNotRunning) {
			t.Errorf("%s: %v (retryable %v), want %v", tc.name, err, socks.Retryable(err), tc.kind)
		}
	}
}

// rawProxy accepts connections, reads the greeting and writes answer, then
// closes: a misbehaving proxy.
func rawProxy(t *testing.T, answer []byte) string {
	return serveTCP(t, func(c net.Conn) {
		if answer != nil {
			c.Read(make([]byte, 3))
			c.Write(answer)
		}
		c.Close()
	}).Addr().String()
}

func TestProtocolErrors(t *testing.T) {
	for name, answer := range map[string][]byte{
		"socks4 answer":       {0x00, 0x5a, 0, 0, 0, 0, 0, 0},
		"http answer":         []byte("HTTP/1.1 400 Bad Request\r\n\r\n"),
		"auth method refused": {0x05, 0xFF},
		"method not offered":  {0x05, 0x00},
	} {
		d := &socks.Dialer{ProxyAddr: rawProxy(t, answer), Isolation: "peer"}
		_, err := d.DialContext(t.Context(), "tcp", vectorOnion+":80")
		if !errors.Is(err, socks.ErrSocksProxy) || socks.Retryable(err) {
			t.Errorf("%s: %v, want ErrSocksProxy", name, err)
		}
	}
	// Choosing username/password and then closing before the
	// authentication reply is tor going away, not a protocol error.
	d := &socks.Dialer{ProxyAddr: rawProxy(t, []byte{0x05, 0x02}), Isolation: "peer"}
	_, err := d.DialContext(t.Context(), "tcp", vectorOnion+":80")
	if !errors.Is(err, socks.ErrDaemonNotRunning) || !socks.Retryable(err) || !strings.Contains(err.Error(), "during authentication") {
		t.Errorf("closed during authentication: %v, want ErrDaemonNotRunning, retryable", err)
	}
}

// settledGoroutines waits briefly for goroutines of finished work to exit.
func settledGoroutines(want int) int {
	n := runtime.NumGoroutine()
	for i := 0; i < 100 && n > want; i++ {
		time.Sleep(10 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	return n
}

func TestCancelMidHandshake(t *testing.T) {
	srv := sockstest.NewServer(t)
	srv.Stall(vectorOnion)
	d := &socks.Dialer{ProxyAddr: srv.Addr(), Timeout: -1}
	before := runtime.NumGoroutine()

	for i := range 5 {
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			_, err := d.DialContext(ctx, "tcp", vectorOnion+":80")
			done <- err
		}()
		waitRequests(t, srv, i+1)
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) || socks.Retryable(err) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("DialContext ignored cancellation")
		}
	}
	// The fake server's per-connection goroutines end when the dialer
	// closes its side; anything left over is a leak.
	if n := settledGoroutines(before); n > before {
		t.Errorf("goroutines: %d before, %d after: leak", before, n)
	}
}

func waitRequests(t *testing.T, srv *sockstest.Server, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); len(srv.Requests()) < n; {
		if time.Now().After(deadline) {
			t.Fatalf("proxy saw %d requests, want %d", len(srv.Requests()), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestOwnTimeout(t *testing.T) {
	srv := sockstest.NewServer(t)
	srv.Stall(vectorOnion)
	srv.Stall("example.com")
	d := &socks.Dialer{ProxyAddr: srv.Addr(), Timeout: 50 * time.Millisecond}
	_, err := d.DialContext(t.Context(), "tcp", vectorOnion+":80")
	if !errors.Is(err, socks.ErrOnionServiceUnreachable) || !errors.Is(err, context.DeadlineExceeded) || !socks.Retryable(err) {
		t.Errorf("onion timeout: %v", err)
	}
	_, err = d.DialContext(t.Context(), "tcp", "example.com:80")
	if !errors.Is(err, socks.ErrCircuitBuildFailed) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("exit timeout: %v", err)
	}

	// A proxy that accepts but never answers the greeting is not tor.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		c, err := silent.Accept()
		if err == nil {
			io.Copy(io.Discard, c) // until the dialer gives up and closes
			c.Close()
		}
	}()
	d = &socks.Dialer{ProxyAddr: silent.Addr().String(), Timeout: 50 * time.Millisecond}
	_, err = d.DialContext(t.Context(), "tcp", vectorOnion+":80")
	if !errors.Is(err, socks.ErrSocksProxy) || !errors.Is(err, context.DeadlineExceeded) || socks.Retryable(err) {
		t.Errorf("silent proxy: %v", err)
	}
	if _, err := (&socks.Dialer{}).DialContext(t.Context(), "tcp", vectorOnion+":80"); !errors.Is(err, socks.ErrSocksProxy) {
		t.Errorf("no ProxyAddr: %v", err)
	}

	// The caller's deadline is the caller's: not classified as tor's fault.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err = (&socks.Dialer{ProxyAddr: srv.Addr()}).DialContext(ctx, "tcp", vectorOnion+":80")
	var se *socks.Error
	if !errors.Is(err, context.DeadlineExceeded) || errors.As(err, &se) {
		t.Errorf("caller deadline: %v", err)
	}
}

func TestUnixSocketProxy(t *testing.T) {
	// Relay a unix socket to the fake server, as tor's "SocksPort unix:".
	srv := sockstest.NewServer(t)
	srv.Reply(vectorOnion, socks.ReplySucceeded)
	path := filepath.Join(t.TempDir(), "s")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); os.Remove(path) })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		u, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			return
		}
		defer u.Close()
		go io.Copy(u, c)
		io.Copy(c, u)
	}()
	c, err := (&socks.Dialer{ProxyAddr: "unix:" + path}).DialContext(t.Context(), "tcp", vectorOnion+":80")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// TestRetryCredentialAfterOnionFailure: after an onion dial of a ForPeer
// dialer fails once tor had the request, in a way a new circuit can cure,
// the next dial of that peer sends a new credential (so tor builds a new
// rendezvous instead of waiting on the one that failed), and it keeps that
// credential once dials succeed. Other peers keep theirs, and so does the
// peer after failures a new circuit does not cure.
func TestRetryCredentialAfterOnionFailure(t *testing.T) {
	echo := echoListener(t).Addr().String()
	const other = "xuqpgzbqcx2nqeb3e6eoxbjbppxrknypjjzuqqtmnzcugejwgdylkuad.onion" // always answers
	tests := []struct {
		name   string
		host   string
		fail   func(*sockstest.Server, string)
		rotate bool
	}{
		{"rendezvous failed 0xF3", vectorOnion, func(s *sockstest.Server, h string) { s.Reply(h, 0xF3) }, true},
		{"intro failed 0xF2", vectorOnion, func(s *sockstest.Server, h string) { s.Reply(h, 0xF2) }, true},
		{"intro timed out 0xF7", vectorOnion, func(s *sockstest.Server, h string) { s.Reply(h, 0xF7) }, true},
		{"ttl expired 0x06", vectorOnion, func(s *sockstest.Server, h string) { s.Reply(h, 0x06) }, true},
		{"general failure 0x01", vectorOnion, func(s *sockstest.Server, h string) { s.Reply(h, 0x01) }, true},
		{"no answer within Timeout", vectorOnion, func(s *sockstest.Server, h string) { s.Stall(h) }, true},
		{"descriptor not found 0xF0", vectorOnion, func(s *sockstest.Server, h string) { s.Reply(h, 0xF0) }, false},
		{"port refused 0x05", vectorOnion, func(s *sockstest.Server, h string) { s.Reply(h, 0x05) }, false},
		{"client auth missing 0xF4", vectorOnion, func(s *sockstest.Server, h string) { s.Reply(h, 0xF4) }, false},
		{"not an onion", "example.com", func(s *sockstest.Server, h string) { s.Reply(h, 0x04) }, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := sockstest.NewServer(t)
			srv.Route(other, echo)
			base := &socks.Dialer{ProxyAddr: srv.Addr(), Timeout: 200 * time.Millisecond}
			peer := fmt.Sprintf("retry-peer-%d", i) // the failure count is per process
			dial := func(p, host string) error {
				c, err := base.ForPeer(p).DialContext(t.Context(), "tcp", host+":80")
				if err == nil {
					c.Close()
				}
				return err
			}
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(dial(peer+"-other", other))
			tt.fail(srv, tt.host)
			if err := dial(peer, tt.host); err == nil {
				t.Fatal("dial succeeded")
			}
			srv.Route(tt.host, echo)
			must(dial(peer, tt.host))
			must(dial(peer, tt.host))
			must(dial(peer+"-other", other))
			r := srv.Requests()
			if len(r) != 5 {
				t.Fatalf("%d requests, want 5", len(r))
			}
			o1, failed, after, again, o2 := r[0].Username, r[1].Username, r[2].Username, r[3].Username, r[4].Username
			if rotated := failed != after; rotated != tt.rotate {
				t.Errorf("credential changed after the failure = %v, want %v", rotated, tt.rotate)
			}
			if after != again {
				t.Error("credential changed after a successful dial")
			}
			if o1 != o2 {
				t.Error("another peer's credential changed")
			}
			if after == o2 || failed == o1 {
				t.Error("two peers share a credential")
			}
		})
	}
}

// TestRetryCredentialCallerContext: the caller's deadline expiring while
// tor works on the CONNECT moves the peer to a new credential, as the
// dialer's own Timeout does; the caller cancelling (it lost interest) does
// not, and neither does a proxy that never got the request.
func TestRetryCredentialCallerContext(t *testing.T) {
	srv := sockstest.NewServer(t)
	srv.Stall(vectorOnion)
	base := &socks.Dialer{ProxyAddr: srv.Addr(), Timeout: -1} // only the caller bounds it
	dial := func(p string, ctx context.Context) {
		if c, err := base.ForPeer(p).DialContext(ctx, "tcp", vectorOnion+":80"); err == nil {
			c.Close()
			t.Fatal("stalled dial succeeded")
		}
	}
	deadline := func() context.Context {
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		t.Cleanup(cancel)
		return ctx
	}
	cancelled := func() context.Context {
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(100*time.Millisecond, cancel)
		return ctx
	}
	dial("ctx-deadline", deadline())
	dial("ctx-deadline", deadline())
	dial("ctx-cancel", cancelled())
	dial("ctx-cancel", cancelled())
	r := srv.Requests()
	if len(r) != 4 {
		t.Fatalf("%d requests, want 4", len(r))
	}
	if r[0].Username == r[1].Username {
		t.Error("caller's deadline: the retry used the same credential")
	}
	if r[2].Username != r[3].Username {
		t.Error("caller's cancel: the credential changed")
	}

	// A proxy that never answers the greeting: tor never had the request.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	silent := &socks.Dialer{ProxyAddr: ln.Addr().String(), Timeout: 100 * time.Millisecond}
	if _, err := silent.ForPeer("before-connect").DialContext(t.Context(), "tcp", vectorOnion+":80"); err == nil {
		t.Fatal("dial through a silent proxy succeeded")
	}
	srv.Route(vectorOnion, echoListener(t).Addr().String())
	d := (&socks.Dialer{ProxyAddr: srv.Addr(), Timeout: time.Second}).ForPeer("before-connect")
	c, err := d.DialContext(t.Context(), "tcp", vectorOnion+":80")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if got, want := srv.Requests()[4].Username, d.Isolation; got != want {
		t.Errorf("after a failure before CONNECT the credential is %s, want the base %s", got, want)
	}
}
