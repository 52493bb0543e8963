package p2p

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/test"
	ma "github.com/multiformats/go-multiaddr"
)

func heapBytes() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestPeerstoreBounded floods the host's peerstore with the addresses of
// 50,000 fresh peer IDs, as DHT answers naming made-up peers would: the
// unconnected addresses stay under MaxPeerAddrs, and the host still
// connects to a real peer afterwards and keeps that peer's addresses.
func TestPeerstoreBounded(t *testing.T) {
	h := directHost(t, "flooded")
	ps := h.Host().Peerstore()
	before := heapBytes()
	const peers, perPeer = 50000, 4
	for i := range peers {
		id, err := test.RandPeerID()
		if err != nil {
			t.Fatal(err)
		}
		addrs := make([]ma.Multiaddr, perPeer)
		for j := range addrs {
			addrs[j] = ma.StringCast(fmt.Sprintf("/ip4/10.%d.%d.%d/tcp/%d", i>>16&255, i>>8&255, i&255, 4000+j))
		}
		ps.AddAddrs(id, addrs, peerstore.TempAddrTTL)
	}
	total := 0
	for _, p := range ps.PeersWithAddrs() {
		total += len(ps.Addrs(p))
	}
	grown := int64(heapBytes()) - int64(before)
	t.Logf("%d addresses of %d fresh peers offered; peerstore holds %d addresses of %d peers; heap grew %.1f MiB",
		peers*perPeer, peers, total, len(ps.PeersWithAddrs()), float64(grown)/(1<<20))
	if total > MaxPeerAddrs+MaxAddrsPerPeer {
		t.Errorf("peerstore holds %d unconnected addresses, cap %d", total, MaxPeerAddrs)
	}

	other := directHost(t, "other")
	ctx := testCtx(t)
	if err := h.Host().Connect(ctx, peer.AddrInfo{ID: other.ID(), Addrs: other.Addrs()}); err != nil {
		t.Fatalf("connect after the flood: %v", err)
	}
	if len(ps.Addrs(other.ID())) == 0 {
		t.Errorf("connected peer has no addresses in the peerstore")
	}

	// Explicit dials that fail do not leave their addresses outside the
	// cap: they go back to the unconnected class (and, the book being
	// full, out of it).
	for i := range 100 {
		id, err := test.RandPeerID()
		if err != nil {
			t.Fatal(err)
		}
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err = h.Host().Connect(dctx, peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 1+i))}})
		cancel()
		if err == nil {
			t.Fatalf("dial to a closed port succeeded")
		}
	}
	total = 0
	for _, p := range ps.PeersWithAddrs() {
		if p != other.ID() {
			total += len(ps.Addrs(p))
		}
	}
	if total > MaxPeerAddrs+MaxAddrsPerPeer {
		t.Errorf("after 100 failed dials the peerstore holds %d unconnected addresses, cap %d", total, MaxPeerAddrs)
	}
}
