package p2p

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/oniontransport"
)

// Connect connects to pi under the transport policy for pi.ID. Addresses
// the policy forbids are dropped before anything is dialed (so in tor mode
// only /onion3 is ever dialed, and /dns* never is); if none is left, the
// error is ErrPolicy. In hybrid mode onion addresses are tried first for
// HybridTimeout, then direct ones, with a warning in the log.
//
// Dial failures come back wrapped: errors.Is/As reach the onion dialer's
// typed errors (e.g. socks.ErrOnionServiceUnreachable) and the swarm's
// *swarm.DialError, whose DialErrors list every address tried.
func (hst *Host) Connect(ctx context.Context, pi peer.AddrInfo) error {
	mode, err := hst.gater.baseMode(pi.ID)
	if err != nil {
		return fmt.Errorf("p2p: connect %s: %w", pi.ID, err)
	}
	onion, direct, refused := Split(mode, pi.Addrs)
	kOnion, kDirect, _ := Split(mode, hst.h.Peerstore().Addrs(pi.ID))
	if len(onion)+len(direct)+len(kOnion)+len(kDirect) == 0 {
		if hst.connected(pi.ID) {
			return nil
		}
		return fmt.Errorf("%w: no address of %s may be dialed in %s mode (refused %v)", ErrPolicy, pi.ID, mode, refused)
	}
	if mode != ModeHybrid {
		return hst.connect(ctx, peer.AddrInfo{ID: pi.ID, Addrs: append(onion, direct...)})
	}
	return hst.connectHybrid(ctx, pi.ID, onion, direct, len(onion)+len(kOnion) > 0, len(direct)+len(kDirect) > 0)
}

func (hst *Host) connected(p peer.ID) bool { return len(hst.h.Network().ConnsToPeer(p)) > 0 }

// connectHybrid tries onion, then direct. While a phase runs the gater
// narrows the peer to that phase's class, because the swarm dials every
// address in the peerstore at once, not just the ones passed in.
func (hst *Host) connectHybrid(ctx context.Context, p peer.ID, onion, direct []ma.Multiaddr, hasOnion, hasDirect bool) error {
	if hst.connected(p) {
		return nil
	}
	mu, _ := hst.connecting.LoadOrStore(p, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	defer hst.gater.setPhase(p, "")

	var onionErr error
	if hasOnion {
		hst.gater.setPhase(p, ModeTor)
		octx, cancel := context.WithTimeout(ctx, hst.hybridTimeout)
		onionErr = hst.connect(octx, peer.AddrInfo{ID: p, Addrs: onion})
		cancel()
		if onionErr == nil || ctx.Err() != nil || !hasDirect {
			return onionErr
		}
	}
	if onionErr == nil {
		onionErr = errors.New("peer has no onion address")
	}
	hst.log.Warn("p2p: hybrid: no onion connection, dialing directly; the peer now sees this agent's IP address",
		"peer", p.String(), "onion_timeout", hst.hybridTimeout.String(), "onion_error", onionErr.Error())
	hst.gater.setPhase(p, ModeDirect)
	return hst.connect(ctx, peer.AddrInfo{ID: p, Addrs: direct})
}

// connect runs the libp2p connect and classifies its error.
func (hst *Host) connect(ctx context.Context, pi peer.AddrInfo) error {
	err := hst.h.Connect(ctx, pi)
	switch {
	case err == nil:
		return nil
	case policyOnly(err):
		return fmt.Errorf("p2p: connect %s: %w: %w", pi.ID, ErrPolicy, err)
	default:
		return fmt.Errorf("p2p: connect %s: %w", pi.ID, err)
	}
}

// policyOnly reports whether every reason a dial failed was the gater.
func policyOnly(err error) bool {
	var de *swarm.DialError
	if !errors.As(err, &de) {
		return false
	}
	if errors.Is(de.Cause, swarm.ErrGaterDisallowedConnection) {
		return true
	}
	if len(de.DialErrors) == 0 {
		return false
	}
	for _, te := range de.DialErrors {
		if !errors.Is(te.Cause, swarm.ErrGaterDisallowedConnection) {
			return false
		}
	}
	return true
}

// ConnectOnion connects to the agent behind a bare onion address (with or
// without ".onion") on virtual port port. The peer ID is the key the
// address encodes, so no lookup is needed and none can be spoofed.
func (hst *Host) ConnectOnion(ctx context.Context, onionAddr string, port int) (peer.ID, error) {
	m, err := oniontransport.Multiaddr(onionAddr, port)
	if err != nil {
		return "", fmt.Errorf("p2p: connect onion: %w", err)
	}
	p, err := identity.PeerIDFromOnion(onionAddr)
	if err != nil {
		return "", fmt.Errorf("p2p: connect onion: %w", err)
	}
	return p, hst.Connect(ctx, peer.AddrInfo{ID: p, Addrs: []ma.Multiaddr{m}})
}
