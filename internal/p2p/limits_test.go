package p2p

import (
	"errors"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"
)

// TestOnionConnRate checks the trap docs/spec-notes.md describes: onion connections
// have no IP, and must get their own bucket instead of libp2p's shared
// 0.2/s one; outbound onion dials are not rate-limited at all.
func TestOnionConnRate(t *testing.T) {
	rm, err := newResourceManager(Limits{OnionConnRate: 0.001, OnionConnBurst: 3}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	defer rm.Close()
	onionAddr := ma.StringCast(vecOnion)
	var scopes []network.ConnManagementScope
	defer func() {
		for _, s := range scopes {
			s.Done()
		}
	}()
	// 40 outbound onion dials: more than libp2p's default burst of 16.
	for i := range 40 {
		s, err := rm.OpenConnection(network.DirOutbound, true, onionAddr)
		if err != nil {
			t.Fatalf("outbound onion connection %d refused: %v", i, err)
		}
		scopes = append(scopes, s)
	}
	for i := range 3 {
		s, err := rm.OpenConnection(network.DirInbound, true, onionAddr)
		if err != nil {
			t.Fatalf("inbound onion connection %d refused: %v", i, err)
		}
		scopes = append(scopes, s)
	}
	if _, err := rm.OpenConnection(network.DirInbound, true, onionAddr); !errors.Is(err, errConnRate) {
		t.Fatalf("4th inbound onion connection: %v, want rate limit", err)
	}
	// Loopback TCP stays unlimited.
	for i := range 40 {
		s, err := rm.OpenConnection(network.DirInbound, true, ma.StringCast("/ip4/127.0.0.1/tcp/1"))
		if err != nil {
			t.Fatalf("loopback connection %d refused: %v", i, err)
		}
		scopes = append(scopes, s)
	}
}
