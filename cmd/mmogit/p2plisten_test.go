package main

import (
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// TestServeSessionsBounded: past max sessions a connection is closed at
// once, and a session that never ends is closed after the timeout, which
// frees its slot for the next peer.
func TestServeSessionsBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	context.AfterFunc(ctx, func() { ln.Close() })
	const timeout = 2 * time.Second
	served := make(chan error, 1)
	go func() {
		served <- serveSessions(ctx, ln, 2, timeout, false, func(_ context.Context, c net.Conn) {
			io.Copy(io.Discard, c) // an endless peer: returns only when c is closed
		})
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// closedWithin reports whether the server closed c within d.
	closedWithin := func(c net.Conn, d time.Duration) bool {
		c.SetReadDeadline(time.Now().Add(d))
		_, err := c.Read(make([]byte, 1))
		return err == io.EOF
	}
	a, b := dial(), dial()
	time.Sleep(200 * time.Millisecond) // both accepted and holding slots
	if over := dial(); !closedWithin(over, time.Second) {
		t.Fatal("a third session was not refused while two ran")
	}
	if closedWithin(a, 100*time.Millisecond) {
		t.Fatal("a running session was closed before its timeout")
	}
	for _, c := range []net.Conn{a, b} {
		if !closedWithin(c, timeout+5*time.Second) {
			t.Fatal("a session that never ends was not closed after the timeout")
		}
	}
	// The slots are free again.
	time.Sleep(200 * time.Millisecond)
	if next := dial(); closedWithin(next, 300*time.Millisecond) {
		t.Error("a new session was refused after the others timed out")
	}
	cancel()
	if err := <-served; err != nil {
		t.Errorf("serveSessions = %v after ctx ended", err)
	}
}
