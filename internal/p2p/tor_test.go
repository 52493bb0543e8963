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

// TestRealTor connects two tor-only hosts over the private Tor network: B's
// onion service is published by a managed tor (ADD_ONION with B's identity
// key, forwarding to B's listener); A dials it through the network's client
// SOCKS port.
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
	idB := testIdentity("b")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := newHost(t, Config{Identity: idB, Mode: ModeTor, OnionDialer: dialer(d.SocksAddr()),
		Onion: &OnionListener{Listener: ln, Address: idB.OnionAddress(), Port: testPort}})
	a := newHost(t, Config{Identity: testIdentity("a"), Mode: ModeTor, OnionDialer: dialer(nw.SocksAddr())})

	svc, err := d.Publish(ctx, tor.ServiceConfig{Key: idB.Private, VirtualPort: testPort, Target: ln.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Hostname() != idB.OnionAddress() {
		t.Fatalf("tor published %s, want %s", svc.Hostname(), idB.OnionAddress())
	}
	if err := svc.WaitPublished(ctx); err != nil {
		t.Fatal(err)
	}

	// Right after the first upload a client may still miss the descriptor
	// (F0); retry, clearing the swarm's dial backoff each time.
	start := time.Now()
	for {
		_, err = a.ConnectOnion(ctx, idB.OnionAddress(), testPort)
		if err == nil {
			break
		}
		if !errors.Is(err, socks.ErrOnionServiceUnreachable) || ctx.Err() != nil {
			t.Fatalf("connect over tor: %v", err)
		}
		t.Logf("retrying: %v", err)
		a.Host().Network().(*swarm.Swarm).Backoff().Clear(b.ID())
		time.Sleep(time.Second)
	}
	t.Logf("connected over tor %v after publish", time.Since(start))
	rtt, err := a.Ping(ctx, b.ID())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ping over onion circuit: %v", rtt)
	for _, m := range b.Host().Peerstore().Addrs(a.ID()) {
		if Classify(m) != ClassOnion {
			t.Errorf("b learned %s for a", m)
		}
	}
	for _, m := range a.Host().Peerstore().Addrs(b.ID()) {
		if Classify(m) != ClassOnion {
			t.Errorf("a learned %s for b", m)
		}
	}
}
