package agent_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/mmogit/mmogit/internal/config"
	"github.com/mmogit/mmogit/internal/localapi"
	"github.com/mmogit/mmogit/internal/oniontransport"
	"github.com/mmogit/mmogit/internal/testnet"
)

// TestConnectFiltersAddresses: `tor connect` with an address the transport
// policy refuses fails with kind "policy", naming the mode and the address,
// even when the peer is already connected another way, and peers.json never
// lists a refused address. (Direct mode here, so no tor is needed; a
// tor-only agent refusing IP and DNS addresses is in internal/e2e's trace
// test and internal/p2p's TestConnectRefusedAddrs.)
func TestConnectFiltersAddresses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := startAgent(t, agentSetup{cfg: directConfig()})
	b := startAgent(t, agentSetup{cfg: directConfig()})
	bID := b.peerID().String()

	var good string
	for _, m := range b.addrs {
		if !oniontransport.IsOnion(m) {
			good = m.String() + "/p2p/" + bID
		}
	}
	if _, err := a.api.Connect(ctx, good); err != nil {
		t.Fatalf("connect %s: %v", good, err)
	}
	onionTarget := "/onion3/" + strings.TrimSuffix(b.id.OnionAddress(), ".onion") + ":7420/p2p/" + bID
	for _, target := range []string{onionTarget, "/dns4/example.com/tcp/7420/p2p/" + bID} {
		res, err := a.api.Connect(ctx, target)
		var ae *localapi.APIError
		if !errors.As(err, &ae) || ae.Kind != "policy" {
			t.Fatalf("connect %s = %+v, %v: want a policy error", target, res, err)
		}
		addr, _, _ := strings.Cut(target, "/p2p/")
		if !strings.Contains(ae.Msg, "direct mode") || !strings.Contains(ae.Msg, addr) {
			t.Errorf("error %q names neither the mode nor %s", ae.Msg, addr)
		}
	}
	b2, err := os.ReadFile(filepath.Join(a.dir, "peers.json"))
	if err != nil {
		t.Fatal(err)
	}
	if s := string(b2); strings.Contains(s, "/dns4/") || strings.Contains(s, "/onion3/") || !strings.Contains(s, "/ip4/127.0.0.1/") {
		t.Errorf("peers.json stores refused addresses or lacks the good one:\n%s", s)
	}
	peers, err := a.api.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		for _, s := range p.Addrs {
			if m, err := ma.NewMultiaddr(s); err != nil || oniontransport.IsOnion(m) || strings.HasPrefix(s, "/dns") {
				t.Errorf("peer %s lists %s", p.PeerID, s)
			}
		}
	}
}

// TestDirectAgentTorPeer: in direct mode a peer_transport override to tor
// makes the agent start tor and publish its onion service, so that peer is
// reachable over onion (and only over onion), while the agent keeps its TCP
// listener for everyone else.
func TestDirectAgentTorPeer(t *testing.T) {
	if testing.Short() {
		t.Skip("private Tor network: slow")
	}
	nw := testnet.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c := newClient(t, 2, nw.SocksAddr()) // a tor-only peer
	cfg := directConfig()
	cfg.PeerTransport = map[string]config.Transport{c.id.PeerID().String(): config.Tor}
	ta := startAgent(t, agentSetup{cfg: cfg, torrc: nw.Info().ClientTorrc, messages: 2})

	st, err := ta.api.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var onion, tcp bool
	for _, m := range ta.addrs {
		if oniontransport.IsOnion(m) {
			onion = true
		} else {
			tcp = true
		}
	}
	if !st.Published || !onion || !tcp {
		t.Fatalf("direct agent with a tor peer: published=%v, listen %v: want its onion service published and TCP kept", st.Published, st.Listen)
	}
	if s, err := c.sync(ctx, ta); err != nil || s.Added != 2 {
		t.Fatalf("sync over onion: %+v, %v", s, err)
	}
	for _, conn := range c.host.Host().Network().ConnsToPeer(ta.peerID()) {
		if !oniontransport.IsOnion(conn.RemoteMultiaddr()) {
			t.Errorf("tor peer connected over %s", conn.RemoteMultiaddr())
		}
	}
	// The agent's side: that peer's mode is tor, so an IP address for it
	// is refused although the agent is in direct mode.
	_, err = ta.api.Connect(ctx, "/ip4/127.0.0.1/tcp/7420/p2p/"+c.id.PeerID().String())
	var ae *localapi.APIError
	if !errors.As(err, &ae) || ae.Kind != "policy" || !strings.Contains(ae.Msg, "tor mode") {
		t.Errorf("connect to the tor peer's IP = %v: want a tor-mode policy error", err)
	}
}
