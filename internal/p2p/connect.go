package p2p

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/oniontransport"
	"github.com/mmogit/mmogit/internal/socks"
)

// Connect connects to pi under the transport policy for pi.ID. Addresses
// the policy forbids are dropped before anything is dialed (so in tor mode
// only /onion3 is ever dialed, and /dns* never is). If pi names addresses
// and the policy refuses every one of them, Connect fails with a
// *PolicyError (errors.Is ErrPolicy) naming the mode and the addresses, even
// when the peer is already connected or has other addresses in the
// peerstore: a caller that asked for an IP address on a tor-only host must
// not be told it got one. Without addresses in pi, the peerstore's are used.
// In hybrid mode onion addresses are tried first for HybridTimeout
// (retrying transient failures; see connectHybrid for the local failures
// that end it early), then direct ones, with a warning in the log.
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
	if len(pi.Addrs) > 0 && len(onion)+len(direct) == 0 {
		return &PolicyError{Peer: pi.ID, Mode: mode, Refused: refused}
	}
	if len(refused) > 0 {
		hst.log.Info("p2p: not dialing addresses the transport policy forbids", "peer", pi.ID.String(), "mode", string(mode), "refused", fmt.Sprint(refused))
	}
	kOnion, kDirect, kRefused := Split(mode, hst.h.Peerstore().Addrs(pi.ID))
	if len(onion)+len(direct)+len(kOnion)+len(kDirect) == 0 {
		if hst.connected(pi.ID) {
			return nil
		}
		return &PolicyError{Peer: pi.ID, Mode: mode, Refused: kRefused}
	}
	if mode != ModeHybrid {
		return hst.connect(ctx, peer.AddrInfo{ID: pi.ID, Addrs: append(onion, direct...)})
	}
	return hst.connectHybrid(ctx, pi.ID, onion, direct, len(onion)+len(kOnion) > 0, len(direct)+len(kDirect) > 0)
}

// Dialable splits addrs into what the transport policy lets this host dial
// to p and what it refuses, and returns p's effective mode. Callers that
// store addresses (a peer book) keep only the allowed ones.
func (hst *Host) Dialable(p peer.ID, addrs []ma.Multiaddr) (allowed, refused []ma.Multiaddr, mode Mode, err error) {
	mode, err = hst.gater.baseMode(p)
	if err != nil {
		return nil, addrs, "", err
	}
	onion, direct, refused := Split(mode, addrs)
	return append(onion, direct...), refused, mode, nil
}

func (hst *Host) connected(p peer.ID) bool { return len(hst.h.Network().ConnsToPeer(p)) > 0 }

// hybridRetryBase is the first pause between onion attempts in hybrid
// mode; it doubles per attempt, capped by the error's retry hint.
// Right after a peer publishes, "descriptor not found" often clears within
// a second, so the first retries come sooner than socks.RetryAfter says.
var hybridRetryBase = 500 * time.Millisecond

// connectHybrid tries onion, then direct. While a phase runs the gater
// narrows the peer to that phase's class, because the swarm dials every
// address in the peerstore at once, not just the ones passed in.
//
// The direct fallback shows the peer this agent's IP, so the onion phase
// ends early only on a failure the peer cannot have chosen (localFailure:
// our tor is not running or not a SOCKS proxy, or rejects an address that
// passed our own checks). Anything else — descriptor missing, introduction
// or rendezvous failing, client authorization required (a setting of the
// peer's onion service), the peer hanging up — ends the onion phase only
// when hybridTimeout is up: retryable failures are retried within it, the
// others wait it out. Otherwise a peer could answer every onion dial with
// an instant error and learn our IP at once.
func (hst *Host) connectHybrid(ctx context.Context, p peer.ID, onion, direct []ma.Multiaddr, hasOnion, hasDirect bool) error {
	if hst.connected(p) {
		return nil
	}
	defer hst.connecting.lock(p)()
	defer hst.gater.setPhase(p, "")

	var onionErr error
	if hasOnion {
		hst.gater.setPhase(p, ModeTor)
		octx, cancel := context.WithTimeout(ctx, hst.hybridTimeout)
		onionErr = hst.connectOnionPhase(octx, p, onion)
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

// peerLocks is one mutex per peer, held only while someone holds or waits
// for it: an entry is removed when its last user unlocks, so the map is as
// large as the number of connects in flight, not the number of peers ever
// dialed (which the DHT alone makes unbounded).
type peerLocks struct {
	mu sync.Mutex
	m  map[peer.ID]*peerLock
}

type peerLock struct {
	sync.Mutex
	users int // holders and waiters; guarded by peerLocks.mu
}

// lock locks p's mutex and returns its unlock.
func (l *peerLocks) lock(p peer.ID) (unlock func()) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[peer.ID]*peerLock{}
	}
	pl := l.m[p]
	if pl == nil {
		pl = &peerLock{}
		l.m[p] = pl
	}
	pl.users++
	l.mu.Unlock()
	pl.Lock()
	return func() {
		pl.Unlock()
		l.mu.Lock()
		if pl.users--; pl.users == 0 {
			delete(l.m, p)
		}
		l.mu.Unlock()
	}
}

// len is how many peers have a connect in flight.
func (l *peerLocks) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

// connectOnionPhase dials p's onion addresses until one connects, the
// failure is on this agent's side, or octx (the hybrid timeout) ends.
func (hst *Host) connectOnionPhase(octx context.Context, p peer.ID, onion []ma.Multiaddr) error {
	for attempt := 0; ; attempt++ {
		err := hst.connect(octx, peer.AddrInfo{ID: p, Addrs: onion})
		if err == nil {
			return nil
		}
		if localFailure(err) || octx.Err() != nil {
			return err
		}
		hint := socks.RetryAfter(err)
		wait := min(hint, hybridRetryBase<<min(attempt, 8))
		if dl, ok := octx.Deadline(); hint <= 0 || (ok && time.Until(dl) <= wait) {
			// No retry can help (or none fits): still no direct dial
			// before hybrid_timeout, or the peer would choose when it
			// sees our IP.
			hst.log.Info("p2p: hybrid: onion dial failed; waiting out hybrid_timeout before any direct dial",
				"peer", p.String(), "err", err.Error())
			<-octx.Done()
			return err
		}
		hst.log.Info("p2p: hybrid: onion not reachable yet, retrying before any direct dial",
			"peer", p.String(), "attempt", attempt+1, "in", wait.String(), "err", err.Error())
		select {
		case <-octx.Done():
			return err
		case <-time.After(wait):
		}
		// The swarm backs off from addresses that just failed; this retry
		// is deliberate.
		if sw, ok := hst.h.Network().(*swarm.Swarm); ok {
			sw.Backoff().Clear(p)
		}
	}
}

// localFailure reports whether every onion dial in err failed for a reason
// on this agent's side, which the peer cannot provoke: our tor not
// listening or not speaking SOCKS, no onion dialer, or an address refused
// by tor (0xF6) or the SOCKS client although the onion transport had
// already checked its checksum and that it is the peer's own key.
// A peer's onion service cannot make tor answer any of these for its
// well-formed address; client authorization (0xF4/0xF5), unreachable
// services and broken handshakes are the peer's to choose, so they are not
// local.
func localFailure(err error) bool {
	local := func(e error) bool {
		switch {
		case errors.Is(e, socks.ErrBadAddress), errors.Is(e, socks.ErrSocksProxy),
			errors.Is(e, oniontransport.ErrNoDialer):
			return true
		case errors.Is(e, socks.ErrDaemonNotRunning):
			// Nothing listening is local; tor hanging up mid-dial is
			// retryable and treated like other transient failures.
			return socks.RetryAfter(e) == 0
		}
		return false
	}
	var de *swarm.DialError
	if !errors.As(err, &de) || len(de.DialErrors) == 0 {
		return local(err)
	}
	for _, te := range de.DialErrors {
		if !local(te.Cause) {
			return false
		}
	}
	return true
}

// connect runs the libp2p connect and classifies its error.
func (hst *Host) connect(ctx context.Context, pi peer.AddrInfo) error {
	if len(pi.Addrs) > 0 && !hst.connected(pi.ID) {
		// The peerstore drops new unconnected addresses once it holds
		// MaxPeerAddrs of them, so a flood of made-up peers in DHT answers
		// would make the addresses we were asked to dial vanish before the
		// swarm reads them ("no addresses"). They are held in the
		// connected class while the dial runs (the swarm keeps or ages
		// them as for any connection) and put back to a short TTL if it
		// failed.
		ps := hst.h.Peerstore()
		ps.AddAddrs(pi.ID, pi.Addrs, peerstore.ConnectedAddrTTL)
		defer func() {
			if !hst.connected(pi.ID) {
				ps.UpdateAddrs(pi.ID, peerstore.ConnectedAddrTTL, peerstore.TempAddrTTL)
			}
		}()
	}
	var err error
	if noIdentifyWait(ctx) {
		// libp2p's Connect would also wait for identify; the swarm's
		// dial returns once Noise and yamux are up.
		if !hst.connected(pi.ID) {
			_, err = hst.h.Network().DialPeer(ctx, pi.ID)
		}
	} else {
		err = hst.h.Connect(ctx, pi)
	}
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
