package agent_test

import (
	"context"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/localapi"
)

// TestPeersSyncCountsAndRoles: after a sync, each side's Peers shows when
// it completed and what it moved (outbound on one side, inbound on the
// other), and the roles its trust list gives the peer.
func TestPeersSyncCountsAndRoles(t *testing.T) {
	a := startAgent(t, agentSetup{cfg: directConfig(), messages: 3})
	b := startAgent(t, agentSetup{cfg: directConfig(), messages: 2})
	a.grant(t, b.id, true, true)
	b.grant(t, a.id, true, false)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	before := time.Now().Add(-time.Second)
	target := b.addrs[0].String() + "/p2p/" + b.peerID().String()
	rs, err := a.api.Sync(ctx, target)
	if err != nil || len(rs) != 1 || rs[0].Error != "" {
		t.Fatalf("sync: %+v, %v", rs, err)
	}
	tests := []struct {
		name        string
		on          *testAgent
		peer        string
		counts      localapi.SyncCounts
		read, write bool
	}{
		// b gave a read only. Sync v3 pushes a delta this small as soon
		// as the summaries cross, before a learns b's roles, so a sends
		// its 3 and b refuses them (counted at b, nothing stored).
		{"outbound (a)", a, b.peerID().String(), localapi.SyncCounts{Received: 2, Sent: 3}, true, true},
		{"inbound (b)", b, a.peerID().String(), localapi.SyncCounts{Received: 0, Sent: 2, Refused: 3}, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The inbound side records its session when its handler
			// returns, which may be just after the dialer's Sync did.
			var p *localapi.Peer
			for p == nil {
				ps, err := tc.on.api.Peers(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for i := range ps {
					if ps[i].PeerID == tc.peer && ps[i].LastSyncCounts != nil {
						p = &ps[i]
					}
				}
				if p != nil {
					break
				}
				select {
				case <-ctx.Done():
					t.Fatalf("peer %s not listed with a sync: %+v", tc.peer, ps)
				case <-time.After(50 * time.Millisecond):
				}
			}
			if p.LastSync.Before(before) || p.LastSyncCounts == nil || *p.LastSyncCounts != tc.counts {
				t.Errorf("last sync %v counts %+v: want after %v and %+v", p.LastSync, p.LastSyncCounts, before, tc.counts)
			}
			if p.Read != tc.read || p.Write != tc.write {
				t.Errorf("roles read=%v write=%v: want %v %v", p.Read, p.Write, tc.read, tc.write)
			}
		})
	}
}
