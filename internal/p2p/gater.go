package p2p

import (
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Dial is one outgoing address the connection gater was asked about.
type Dial struct {
	Peer    peer.ID
	Addr    ma.Multiaddr
	Allowed bool
	Time    time.Time
}

// gater enforces the transport policy inside the swarm. Host.Connect
// filters addresses before dialing; the gater is the second line for every
// dial the swarm makes on its own (the DHT, identify push, reconnects) and
// for addresses that reach the peerstore from elsewhere.
type gater struct {
	global   Mode
	peerMode func(peer.ID) Mode // the override, "" for none
	log      *slog.Logger       // never nil

	// mu guards the fields below.
	mu       sync.Mutex
	dials    []Dial
	maxDials int
	// peerAddrs is the peerstore's address lookup (set once the host
	// exists), for the hybrid rule in InterceptAddrDial.
	peerAddrs func(peer.ID) []ma.Multiaddr
	// phase narrows a peer's mode while Host.Connect runs one phase of a
	// hybrid connect (tor first, then direct), so that addresses already
	// in the peerstore cannot jump the queue.
	phase map[peer.ID]Mode
}

var _ connmgr.ConnectionGater = (*gater)(nil)

// maxRecordedDials bounds the Dials record; a long-running agent keeps the
// most recent ones.
const maxRecordedDials = 4096

func newGater(global Mode, peerMode func(peer.ID) Mode) *gater {
	return &gater{global: global, peerMode: peerMode, log: slog.New(slog.DiscardHandler), maxDials: maxRecordedDials, phase: map[peer.ID]Mode{}}
}

// baseMode is p's effective mode (global mode and p's override).
func (g *gater) baseMode(p peer.ID) (Mode, error) { return EffectiveMode(g.global, g.peerMode(p)) }

// modeFor is p's effective mode, narrowed by a running hybrid phase.
func (g *gater) modeFor(p peer.ID) (Mode, error) {
	m, err := g.baseMode(p)
	if err != nil {
		return "", err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if ph, ok := g.phase[p]; ok {
		return ph, nil
	}
	return m, nil
}

func (g *gater) setPeerAddrs(f func(peer.ID) []ma.Multiaddr) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.peerAddrs = f
}

// hasOnion reports whether the peerstore knows an /onion3 address of p.
func (g *gater) hasOnion(p peer.ID) bool {
	g.mu.Lock()
	f := g.peerAddrs
	g.mu.Unlock()
	if f == nil {
		return false
	}
	for _, a := range f(p) {
		if Classify(a) == ClassOnion {
			return true
		}
	}
	return false
}

func (g *gater) setPhase(p peer.ID, m Mode) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if m == "" {
		delete(g.phase, p)
		return
	}
	g.phase[p] = m
}

func (g *gater) record(d Dial) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.dials) >= g.maxDials {
		g.dials = append(g.dials[:0], g.dials[len(g.dials)-g.maxDials/2:]...)
	}
	g.dials = append(g.dials, d)
}

func (g *gater) Dials() []Dial {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]Dial(nil), g.dials...)
}

// InterceptPeerDial refuses peers whose override cannot be honoured (a
// direct peer on a tor-only host).
func (g *gater) InterceptPeerDial(p peer.ID) bool {
	_, err := g.modeFor(p)
	return err == nil
}

// InterceptAddrDial allows an address only if the peer's mode allows its
// class; in tor mode that is /onion3 and nothing else. In hybrid mode,
// outside Host.Connect's direct phase, a direct address of a peer with a
// known onion address is refused too: a dial the swarm makes on its own
// (a stream to an unconnected peer) dials every address at once and would
// otherwise reach the peer directly, showing it our IP, with no onion
// attempt first and no warning. Such a peer is reached directly only
// through Host.Connect's fallback.
func (g *gater) InterceptAddrDial(p peer.ID, a ma.Multiaddr) bool {
	m, err := g.modeFor(p)
	ok := err == nil && Allowed(m, a)
	if ok && m == ModeHybrid && Classify(a) == ClassDirect {
		if g.hasOnion(p) {
			ok = false
		} else {
			// A dial the swarm makes on its own (the DHT opening a
			// stream) to a peer with only direct addresses: it shows
			// the peer our IP as much as Host.Connect's fallback, which
			// warns; so must this. (Host.Connect's direct phase narrows
			// m to ModeDirect and has warned already.)
			g.log.Warn("p2p: hybrid: dialing directly, the peer has no onion address; the peer now sees this agent's IP address",
				"peer", p.String(), "addr", a.String())
		}
	}
	g.record(Dial{Peer: p, Addr: a, Allowed: ok, Time: time.Now()})
	return ok
}

// InterceptAccept refuses inbound connections whose class the global mode
// excludes, before any handshake: a tor-only host has no TCP listener, but
// if one appeared it would still not accept on it.
func (g *gater) InterceptAccept(c network.ConnMultiaddrs) bool {
	return Allowed(g.acceptMode(), c.RemoteMultiaddr())
}

// acceptMode is the widest mode any peer may have: per-peer overrides can
// widen a direct host to onion for some peers (or the reverse), and the
// peer is unknown before the handshake.
func (g *gater) acceptMode() Mode {
	if g.global == ModeTor {
		return ModeTor
	}
	return ModeHybrid
}

// InterceptSecured checks, once the peer is known, that the connection's
// class matches that peer's mode, in both directions: a peer set to tor is
// not talked to over TCP even if it dials in directly.
func (g *gater) InterceptSecured(_ network.Direction, p peer.ID, c network.ConnMultiaddrs) bool {
	// The base mode, not the hybrid phase: the phase only orders dials,
	// and an inbound connection from a hybrid peer is welcome either way.
	m, err := g.baseMode(p)
	return err == nil && Allowed(m, c.RemoteMultiaddr())
}

// InterceptUpgraded has nothing left to check.
func (g *gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
