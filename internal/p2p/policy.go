package p2p

import (
	"errors"
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/mmogit/mmogit/internal/oniontransport"
)

// Mode is a transport policy: which kinds of address may be dialed,
// accepted and announced.
type Mode string

const (
	// ModeDirect uses TCP only: fast, but every peer sees this agent's IP.
	ModeDirect Mode = "direct"
	// ModeTor uses onion services only. The host never dials, accepts or
	// announces an IP address. As the global mode it is a ceiling: a peer
	// override cannot loosen it (see EffectiveMode).
	ModeTor Mode = "tor"
	// ModeHybrid dials a peer's onion addresses first and falls back to
	// direct TCP after Config.HybridTimeout (sooner only on a failure on
	// this agent's side, or for a peer with no onion address), logging
	// that the peer now sees this agent's IP.
	ModeHybrid Mode = "hybrid"
)

// ErrPolicy means the transport policy forbids a connection: no address of
// the peer may be dialed in its mode, the connection gater refused, or a
// peer override contradicts a tor-only host.
var ErrPolicy = errors.New("p2p: forbidden by transport policy")

// PolicyError is returned when the transport policy refuses every address
// a connect was given (or knows) for a peer. It matches ErrPolicy with
// errors.Is, and its text names the mode and each refused address with the
// reason, so a user who typed an IP address on a tor-only agent learns why
// nothing was dialed.
type PolicyError struct {
	Peer    peer.ID
	Mode    Mode           // the peer's effective mode
	Refused []ma.Multiaddr // the addresses refused; empty if none was known
}

func (e *PolicyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v: %s is in %s mode", ErrPolicy, e.Peer, e.Mode)
	if len(e.Refused) == 0 {
		fmt.Fprintf(&b, " and no address of it that %s mode may dial is known; give its onion address or multiaddr", e.Mode)
		return b.String()
	}
	b.WriteString(", which refuses")
	for i, a := range e.Refused {
		if i > 0 {
			b.WriteString(";")
		}
		fmt.Fprintf(&b, " %s (%s)", a, refusal(e.Mode, a))
	}
	return b.String()
}

// Is makes errors.Is(err, ErrPolicy) true.
func (e *PolicyError) Is(target error) bool { return target == ErrPolicy }

// refusal says why mode m does not dial a.
func refusal(m Mode, a ma.Multiaddr) string {
	switch Classify(a) {
	case ClassDirect:
		return "an IP address: dialing it would show the peer this agent's IP; tor mode dials only /onion3 addresses"
	case ClassDNS:
		return "a DNS name: resolving it outside tor would leak the lookup, so /dns addresses are never dialed; use the peer's onion address or an IP multiaddr"
	case ClassOnion:
		return "an onion address: direct mode has no tor; set transport or peer_transport to tor or hybrid"
	default:
		return "no transport for it; use /onion3/<56 chars>:<port> or /ip4|/ip6/<addr>/tcp/<port>"
	}
}

// ParseMode parses "direct", "tor" or "hybrid" (any case).
func ParseMode(s string) (Mode, error) {
	m := Mode(strings.ToLower(strings.TrimSpace(s)))
	if !m.Valid() {
		return "", fmt.Errorf("p2p: unknown transport mode %q (want direct, tor or hybrid)", s)
	}
	return m, nil
}

// Valid reports whether m is one of the three modes.
func (m Mode) Valid() bool { return m == ModeDirect || m == ModeTor || m == ModeHybrid }

func (m Mode) String() string { return string(m) }

// EffectiveMode is the mode used for one peer: its override if it has one,
// else the global mode. A tor-only host cannot talk to a peer directly, so a
// "direct" override under global tor is an error (ErrPolicy), and "hybrid"
// under global tor means tor.
func EffectiveMode(global, override Mode) (Mode, error) {
	if override == "" {
		return global, nil
	}
	if global != ModeTor {
		return override, nil
	}
	switch override {
	case ModeDirect:
		return "", fmt.Errorf("%w: peer is set to direct but this agent is tor-only", ErrPolicy)
	default:
		return ModeTor, nil
	}
}

// AddrClass sorts multiaddrs for the policy.
type AddrClass int

const (
	// ClassOther: anything neither transport here can dial without a
	// leak or at all (quic, circuit relay, unix, ...).
	ClassOther AddrClass = iota
	// ClassOnion: a single /onion3 component.
	ClassOnion
	// ClassDirect: an IP literal with TCP (/ip4|/ip6/.../tcp/...).
	ClassDirect
	// ClassDNS: contains /dns, /dns4, /dns6 or /dnsaddr. Never dialed: the
	// swarm resolves these before the gater runs, which is a DNS leak.
	ClassDNS
)

// Classify returns a's class.
func Classify(a ma.Multiaddr) AddrClass {
	if len(a) == 0 {
		return ClassOther
	}
	for _, c := range a {
		switch c.Protocol().Code {
		case ma.P_DNS, ma.P_DNS4, ma.P_DNS6, ma.P_DNSADDR:
			return ClassDNS
		}
	}
	if oniontransport.IsOnion(a) {
		return ClassOnion
	}
	switch a[0].Protocol().Code {
	case ma.P_IP4, ma.P_IP6:
	default:
		return ClassOther
	}
	if len(a) < 2 || a[1].Protocol().Code != ma.P_TCP {
		return ClassOther
	}
	// /ip4/x/tcp/y, optionally followed by /p2p/<id>; nothing stacked on
	// top (/ws, /tls, ...) that this host has no transport for.
	if len(a) == 2 || (len(a) == 3 && a[2].Protocol().Code == ma.P_P2P) {
		return ClassDirect
	}
	return ClassOther
}

// Allowed reports whether a may be dialed (or accepted) in mode m, where m
// is already the peer's effective mode.
func Allowed(m Mode, a ma.Multiaddr) bool {
	switch Classify(a) {
	case ClassOnion:
		return m == ModeTor || m == ModeHybrid
	case ClassDirect:
		return m == ModeDirect || m == ModeHybrid
	default:
		return false
	}
}

// Split sorts addrs into what may be dialed in mode m, onion and direct
// separately (so hybrid can try onion first), and what may not.
func Split(m Mode, addrs []ma.Multiaddr) (onion, direct, refused []ma.Multiaddr) {
	for _, a := range addrs {
		switch {
		case !Allowed(m, a):
			refused = append(refused, a)
		case Classify(a) == ClassOnion:
			onion = append(onion, a)
		default:
			direct = append(direct, a)
		}
	}
	return onion, direct, refused
}

// Announce filters the host's own listen addresses down to what it may tell
// peers in global mode m: only /onion3 in tor mode; onion and IP/TCP
// addresses otherwise, minus unspecified IPs (0.0.0.0 means nothing to a
// peer) and anything with DNS.
func Announce(m Mode, addrs []ma.Multiaddr) []ma.Multiaddr {
	out := make([]ma.Multiaddr, 0, len(addrs))
	for _, a := range addrs {
		switch Classify(a) {
		case ClassOnion:
			out = append(out, a)
		case ClassDirect:
			if m != ModeTor && !manet.IsIPUnspecified(a) {
				out = append(out, a)
			}
		}
	}
	return out
}
