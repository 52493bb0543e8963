package agent

import (
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/mmogit/mmogit/internal/config"
	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/onion"
)

// TestKnownBootstrapOnionOnly: saved peers bootstrap the DHT with all
// their addresses in direct mode, and with their onion addresses only
// otherwise (so no DHT dial reveals our IP outside hybrid's fallback).
func TestKnownBootstrapOnionOnly(t *testing.T) {
	self := identity.FromSeed(make([]byte, 32))
	seed := make([]byte, 32)
	seed[0] = 1
	other := identity.FromSeed(seed)
	host := strings.TrimSuffix(onion.Hostname(other.Public), onion.Suffix)
	onionAddr := ma.StringCast("/onion3/" + host + ":7420")
	ipAddr := ma.StringCast("/ip4/127.0.0.1/tcp/4001")
	for _, tc := range []struct {
		mode config.Transport
		want int
	}{{config.Direct, 2}, {config.Hybrid, 1}, {config.Tor, 1}} {
		pb, err := loadPeerBook(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		pb.add(peer.AddrInfo{ID: other.PeerID(), Addrs: []ma.Multiaddr{ipAddr, onionAddr}}, "")
		cfg := config.Default()
		cfg.Transport = tc.mode
		a := &Agent{opts: Options{Config: cfg}, id: self, peers: pb}
		got, err := a.bootstrapPeers()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || len(got[0].Addrs) != tc.want {
			t.Fatalf("%s: bootstrap peers %v, want one with %d address(es)", tc.mode, got, tc.want)
		}
		if tc.want == 1 && !got[0].Addrs[0].Equal(onionAddr) {
			t.Errorf("%s: bootstrap address %s, want the onion one", tc.mode, got[0].Addrs[0])
		}
	}
}
