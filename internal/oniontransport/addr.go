package oniontransport

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/onion"
)

// Errors callers branch on. Dial errors from the configured dialer are
// wrapped, not replaced, so errors.Is/As still reach them (for example
// socks.ErrOnionServiceUnreachable) through the swarm's *swarm.DialError.
var (
	// ErrBadAddress means a multiaddr is not a single, valid /onion3
	// component. It wraps the onion package's reason (onion.ErrChecksum,
	// onion.ErrLength, ...) when there is one.
	ErrBadAddress = errors.New("oniontransport: bad onion3 address")
	// ErrPeerMismatch means the onion address encodes a different key than
	// the peer ID being dialed. The address is the key, so such a dial can
	// only reach the wrong peer; it is refused before any packet leaves.
	ErrPeerMismatch = errors.New("oniontransport: onion address does not belong to peer")
	// ErrNoDialer means the transport was built without WithDialer and so
	// cannot dial out.
	ErrNoDialer = errors.New("oniontransport: no dialer configured")
	// ErrNoListener means Listen was asked for an onion address the
	// transport has no listener for (see WithListener).
	ErrNoListener = errors.New("oniontransport: no listener for address")
)

// Addr is a parsed /onion3 multiaddr.
type Addr struct {
	// Host is the 56-character v3 address, lowercase, without ".onion".
	Host string
	// Port is the onion service's virtual port.
	Port int
	// Public is the Ed25519 key the address encodes (and so the peer's key).
	Public ed25519.PublicKey
}

// Hostport is "<host>.onion:<port>", the name handed to tor over SOCKS.
func (a Addr) Hostport() string {
	return a.Host + onion.Suffix + ":" + strconv.Itoa(a.Port)
}

// PeerID is the libp2p peer ID of the key the address encodes.
func (a Addr) PeerID() (peer.ID, error) { return identity.PeerIDFromPublic(a.Public) }

// Multiaddr returns the address as /onion3/<host>:<port>.
func (a Addr) Multiaddr() ma.Multiaddr {
	m, err := Multiaddr(a.Host, a.Port)
	if err != nil {
		panic(err) // a parsed Addr always re-encodes
	}
	return m
}

// Multiaddr builds /onion3/<host>:<port> from a v3 onion address (with or
// without ".onion", any case), verifying its checksum first.
func Multiaddr(host string, port int) (ma.Multiaddr, error) {
	h := onion.Normalize(host)
	if _, err := onion.Parse(h); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadAddress, err)
	}
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("%w: port %d out of range", ErrBadAddress, port)
	}
	m, err := ma.NewMultiaddr("/onion3/" + h + ":" + strconv.Itoa(port))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadAddress, err)
	}
	return m, nil
}

// IsOnion reports whether m is exactly one /onion3 component. Nothing may be
// encapsulated inside it except a trailing /p2p/<id>, which the swarm strips
// before dialing.
func IsOnion(m ma.Multiaddr) bool {
	if len(m) == 0 || m[0].Protocol().Code != ma.P_ONION3 {
		return false
	}
	return len(m) == 1 || (len(m) == 2 && m[1].Protocol().Code == ma.P_P2P)
}

// Parse parses an /onion3 multiaddr and verifies the address checksum,
// which go-multiaddr does not check: a typo in an address must fail here
// rather than as a slow "descriptor not found" from tor.
func Parse(m ma.Multiaddr) (Addr, error) {
	if !IsOnion(m) {
		return Addr{}, fmt.Errorf("%w: %s is not a single /onion3 component", ErrBadAddress, m)
	}
	host, portStr, ok := strings.Cut(m[0].Value(), ":")
	if !ok {
		return Addr{}, fmt.Errorf("%w: %s has no port", ErrBadAddress, m)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return Addr{}, fmt.Errorf("%w: %s has bad port %q", ErrBadAddress, m, portStr)
	}
	pub, err := onion.Parse(host)
	if err != nil {
		return Addr{}, fmt.Errorf("%w: %w", ErrBadAddress, err)
	}
	return Addr{Host: onion.Normalize(host), Port: port, Public: pub}, nil
}

// CheckPeer verifies that a belongs to peer p. It fails with ErrPeerMismatch
// when p is a different key (or not an Ed25519 key at all).
func (a Addr) CheckPeer(p peer.ID) error {
	pub, err := identity.PublicFromPeerID(p)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrPeerMismatch, a.Host, err)
	}
	if !pub.Equal(a.Public) {
		return fmt.Errorf("%w: %s is not %s", ErrPeerMismatch, a.Host, p)
	}
	return nil
}
