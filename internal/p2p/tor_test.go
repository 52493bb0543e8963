package p2p

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"

	"github.com/mmogit/mmogit/internal/oniontransport"
	"github.com/mmogit/mmogit/internal/socks"
	"github.com/mmogit/mmogit/internal/testnet"
	"github.com/mmogit/mmogit/internal/tor"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testnet.CloseShared()
	os.Exit(code)
}

// TestRealTor connects tor-only hosts over the private Tor network: the
// onion services of B and C are published by one managed tor (ADD_ONION
// with each identity key), B's forwarding to a TCP listener on 127.0.0.1
// (what direct and hybrid agents use) and C's to a unix socket in a 0700
// directory (what tor-only agents use, so nothing listens on TCP). A dials
// both through the network's client SOCKS port.
func TestRealTor(t *testing.T) {
	if testing.Short() {
		t.Skip("private Tor network: slow (~20 s)")
	}
	nw := testnet.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	d, err := tor.Start(ctx, tor.Config{DataDir: filepath.Join(t.TempDir(), "tor"), ExtraTorrc: nw.ClientTorrc()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(context.Background()) })

	dialer := func(via string) func(peer.ID) oniontransport.ContextDialer {
		base := &socks.Dialer{ProxyAddr: via, Timeout: 30 * time.Second}
		return func(p peer.ID) oniontransport.ContextDialer { return base.ForPeer(p.String()) }
	}
	a := newHost(t, Config{Identity: testIdentity("a"), Mode: ModeTor, OnionDialer: dialer(nw.SocksAddr())})

	tcpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sockDir, err := os.MkdirTemp("", "p2p-onion-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	unixLn, err := net.Listen("unix", filepath.Join(sockDir, "onion.sock"))
	if err != nil {
		t.Fatal(err)
	}
	targets := []struct {
		name   string
		ln     net.Listener
		target string
	}{
		{"b", tcpLn, tcpLn.Addr().String()},
		{"c", unixLn, "unix:" + unixLn.Addr().String()},
	}
	type service struct {
		name string
		h    *Host
		svc  *tor.Service
	}
	var svcs []service
	for _, tg := range targets {
		id := testIdentity(tg.name)
		h := newHost(t, Config{Identity: id, Mode: ModeTor, OnionDialer: dialer(d.SocksAddr()),
			Onion: &OnionListener{Listener: tg.ln, Address: id.OnionAddress(), Port: testPort}})
		svc, err := d.Publish(ctx, tor.ServiceConfig{Key: id.Private, VirtualPort: testPort, Target: tg.target})
		if err != nil {
			t.Fatalf("%s: ADD_ONION Port=%d,%s: %v", tg.name, testPort, tg.target, err)
		}
		if svc.Hostname() != id.OnionAddress() {
			t.Fatalf("tor published %s, want %s", svc.Hostname(), id.OnionAddress())
		}
		svcs = append(svcs, service{tg.name + " (target " + tg.target + ")", h, svc})
	}
	for _, s := range svcs {
		if err := s.svc.WaitPublished(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range svcs {
		// Right after the first upload a client may still miss the
		// descriptor (F0); retry, clearing the swarm's dial backoff.
		start := time.Now()
		for {
			_, err = a.ConnectOnion(ctx, s.svc.Hostname(), testPort)
			if err == nil {
				break
			}
			if !errors.Is(err, socks.ErrOnionServiceUnreachable) || ctx.Err() != nil {
				t.Fatalf("%s: connect over tor: %v", s.name, err)
			}
			t.Logf("%s: retrying: %v", s.name, err)
			a.Host().Network().(*swarm.Swarm).Backoff().Clear(s.h.ID())
			time.Sleep(time.Second)
		}
		t.Logf("%s: connected over tor %v after publish", s.name, time.Since(start))
		rtt, err := a.Ping(ctx, s.h.ID())
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		t.Logf("%s: ping over onion circuit: %v", s.name, rtt)
		for _, m := range s.h.Host().Peerstore().Addrs(a.ID()) {
			if Classify(m) != ClassOnion {
				t.Errorf("%s learned %s for a", s.name, m)
			}
		}
		for _, m := range a.Host().Peerstore().Addrs(s.h.ID()) {
			if Classify(m) != ClassOnion {
				t.Errorf("a learned %s for %s", m, s.name)
			}
		}
		for _, c := range s.h.Host().Network().ConnsToPeer(a.ID()) {
			if Classify(c.RemoteMultiaddr()) != ClassOnion || Classify(c.LocalMultiaddr()) != ClassOnion {
				t.Errorf("%s: inbound connection %s -> %s: want /onion3 both ends", s.name, c.RemoteMultiaddr(), c.LocalMultiaddr())
			}
		}
	}
}
