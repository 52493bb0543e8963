package sockstest_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/socks"
	"github.com/mmogit/mmogit/internal/socks/sockstest"
)

func TestRouteSplicesBothWays(t *testing.T) {
	// The destination reads everything, then answers and half-closes.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		c.Write(bytes.ToUpper(b))
	}()

	srv := sockstest.NewServer(t)
	srv.Route("Peer.onion:80", ln.Addr().String()) // port-specific, case-insensitive
	d := &socks.Dialer{ProxyAddr: srv.Addr()}
	c, err := d.DialContext(t.Context(), "tcp", "peer.onion:80")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("hello"))
	c.(*net.TCPConn).CloseWrite() // half-close reaches the destination
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "HELLO" {
		t.Fatalf("read %q, %v", got, err)
	}

	// Another port of the same host has no rule: host unreachable.
	_, err = d.DialContext(t.Context(), "tcp", "peer.onion:81")
	var re *socks.ReplyError
	if !errors.As(err, &re) || re.Code != 0x04 {
		t.Errorf("unrouted port: %v, want reply 0x04", err)
	}
}

func TestRouteToClosedTarget(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	srv := sockstest.NewServer(t)
	srv.Route("peer.onion", dead)
	_, err := (&socks.Dialer{ProxyAddr: srv.Addr()}).DialContext(t.Context(), "tcp", "peer.onion:80")
	var re *socks.ReplyError
	if !errors.As(err, &re) || re.Code != 0x05 {
		t.Errorf("closed target: %v, want reply 0x05", err)
	}
}

func TestCloseUnblocksStall(t *testing.T) {
	srv := sockstest.NewServer(t)
	srv.Stall("slow.onion")
	d := &socks.Dialer{ProxyAddr: srv.Addr(), Timeout: -1}
	done := make(chan error, 1)
	go func() {
		_, err := d.DialContext(context.Background(), "tcp", "slow.onion:80")
		done <- err
	}()
	for len(srv.Requests()) == 0 {
		time.Sleep(time.Millisecond)
	}
	srv.Close() // tor going away mid-dial
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("dial succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not release the stalled dial")
	}
	if r := srv.Requests(); len(r) != 1 || r[0].Host != "slow.onion" || r[0].Username != "" {
		t.Errorf("requests = %+v", r)
	}
}
