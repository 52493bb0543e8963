package agent

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/localapi"
	"github.com/mmogit/mmogit/internal/syncproto"
)

// Peers implements localapi.Backend: every peer in the peer book with
// its transport (from the live connection's address when connected), the
// time and counts of its last completed sync, and its trust roles.
func (a *Agent) Peers(ctx context.Context) ([]localapi.Peer, error) {
	list, err := a.trust.Current()
	if err != nil {
		// The last good list is what sync applies too.
		a.log.Debug("trust list unreadable; showing the last good one", "err", err)
	}
	var out []localapi.Peer
	for _, r := range a.peers.list() {
		p := localapi.Peer{PeerID: r.PeerID, OnionAddress: r.OnionAddress, Addrs: r.Addrs, LastSeen: r.LastSeen,
			Services: r.Services, LastSync: r.LastSync, LastSyncCounts: r.LastCounts}
		if id, err := peer.Decode(r.PeerID); err == nil {
			if pub, err := identity.PublicFromPeerID(id); err == nil && list != nil {
				if e, ok := list.Lookup(pub); ok {
					p.Read, p.Write, p.Alias = e.Read, e.Write, e.Alias
				}
			}
			if a.started() {
				conns := a.host.Host().Network().ConnsToPeer(id)
				p.Connected = len(conns) > 0
				p.Transport = string(a.peerMode(id))
				if p.Connected {
					p.LastSeen = time.Now().UTC() // it is connected now
					p.Transport = a.connTransport(conns[0])
				}
			}
		}
		if p.Addrs == nil {
			p.Addrs = []string{}
		}
		out = append(out, p)
	}
	return out, nil
}

// synced records a completed sync session with id (either side opened
// it): its time and what moved, for `peers` and the status page.
func (pb *peerBook) synced(id peer.ID, st syncproto.Stats) {
	pb.update(id, func(r *peerRecord) {
		r.LastSync = r.LastSeen
		r.LastCounts = &localapi.SyncCounts{Received: st.Added, Sent: st.MessagesSent, Rejected: st.Rejected, Refused: st.Refused}
	})
}
