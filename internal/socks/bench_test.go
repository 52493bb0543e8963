package socks_test

import (
	"testing"

	"github.com/mmogit/mmogit/internal/socks"
	"github.com/mmogit/mmogit/internal/socks/sockstest"
)

// BenchmarkHandshake measures a full dial against sockstest on loopback:
// TCP connect, greeting, RFC 1929 credential, CONNECT and reply, then close.
// Most of the time is the kernel and the fake server; allocs/op is the
// dialer's own cost plus the net package's.
//
//	go test -run=^$ -bench=. -benchmem ./internal/socks/
func BenchmarkHandshake(b *testing.B) {
	srv := sockstest.NewServer(b)
	srv.Reply(vectorOnion, socks.ReplySucceeded)
	d := (&socks.Dialer{ProxyAddr: srv.Addr()}).ForPeer("bench")
	b.ReportAllocs()
	for b.Loop() {
		c, err := d.DialContext(b.Context(), "tcp", vectorOnion+":80")
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// BenchmarkHandshakeError is the same with an F0 reply decoded into a typed
// error.
func BenchmarkHandshakeError(b *testing.B) {
	srv := sockstest.NewServer(b)
	srv.Reply(vectorOnion, socks.ReplyOnionDescNotFound)
	d := (&socks.Dialer{ProxyAddr: srv.Addr()}).ForPeer("bench")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.DialContext(b.Context(), "tcp", vectorOnion+":80"); err == nil {
			b.Fatal("dial succeeded")
		}
	}
}
