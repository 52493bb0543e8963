package agent

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/onion"
	ma "github.com/multiformats/go-multiaddr"
)

// defaultOnionPort is the virtual port agents publish when an address
// names none (the reference mmogit's P2P port).
const defaultOnionPort = 7420

// parseTarget turns what a user types into a peer and its addresses:
//
//   - a bare onion address ("<56>.onion", optionally ":port"): the peer ID
//     follows from the address, which is the peer's key;
//   - a multiaddr with /p2p/<id>;
//   - an /onion3 multiaddr without /p2p (peer ID from the key);
//   - a peer ID alone (addresses come from the peer book).
func parseTarget(s string) (peer.AddrInfo, string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return peer.AddrInfo{}, "", fmt.Errorf("agent: empty peer address")
	}
	if strings.HasPrefix(s, "/") {
		return parseMultiaddrTarget(s)
	}
	host, port := s, defaultOnionPort
	if i := strings.LastIndexByte(s, ':'); i > 0 {
		p, err := strconv.Atoi(s[i+1:])
		if err != nil || p <= 0 || p > 65535 {
			return peer.AddrInfo{}, "", fmt.Errorf("agent: bad port in %q", s)
		}
		host, port = s[:i], p
	}
	if strings.HasSuffix(strings.ToLower(host), onion.Suffix) || len(host) == onion.AddressLen {
		pub, err := onion.Parse(host)
		if err != nil {
			return peer.AddrInfo{}, "", fmt.Errorf("agent: %q is not a valid onion address: %w", s, err)
		}
		id, err := identity.PeerIDFromPublic(pub)
		if err != nil {
			return peer.AddrInfo{}, "", err
		}
		m, err := ma.NewMultiaddr(fmt.Sprintf("/onion3/%s:%d", onion.Encode(pub), port))
		if err != nil {
			return peer.AddrInfo{}, "", err
		}
		return peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{m}}, onion.Hostname(pub), nil
	}
	if id, err := peer.Decode(s); err == nil {
		return peer.AddrInfo{ID: id}, "", nil
	}
	return peer.AddrInfo{}, "", fmt.Errorf("agent: %q is neither an onion address, a multiaddr nor a peer ID (a direct HOST:PORT needs its /p2p/<peer id>, e.g. /ip4/1.2.3.4/tcp/7420/p2p/12D3…)", s)
}

func parseMultiaddrTarget(s string) (peer.AddrInfo, string, error) {
	m, err := ma.NewMultiaddr(s)
	if err != nil {
		return peer.AddrInfo{}, "", fmt.Errorf("agent: bad multiaddr %q: %w", s, err)
	}
	var onionHost string
	if v, err := m.ValueForProtocol(ma.P_ONION3); err == nil {
		addr, _, _ := strings.Cut(v, ":")
		pub, err := onion.Parse(addr)
		if err != nil {
			return peer.AddrInfo{}, "", fmt.Errorf("agent: %q: %w", s, err)
		}
		onionHost = onion.Hostname(pub)
	}
	if _, err := m.ValueForProtocol(ma.P_P2P); err == nil {
		ai, err := peer.AddrInfoFromP2pAddr(m)
		if err != nil {
			return peer.AddrInfo{}, "", fmt.Errorf("agent: %q: %w", s, err)
		}
		if onionHost != "" {
			want, _ := identity.PeerIDFromOnion(onionHost)
			if want != ai.ID {
				return peer.AddrInfo{}, "", fmt.Errorf("agent: %q: /p2p peer ID does not match the onion address's key", s)
			}
		}
		return *ai, onionHost, nil
	}
	if onionHost == "" {
		return peer.AddrInfo{}, "", fmt.Errorf("agent: %q has no /p2p/<peer id>; only onion addresses carry their key", s)
	}
	id, err := identity.PeerIDFromOnion(onionHost)
	if err != nil {
		return peer.AddrInfo{}, "", err
	}
	return peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{m}}, onionHost, nil
}

// resolvePeerKey maps a peer_transport key (peer ID or onion address) to a
// peer ID.
func resolvePeerKey(k string) (peer.ID, error) {
	if id, err := peer.Decode(k); err == nil {
		return id, nil
	}
	return identity.PeerIDFromOnion(k)
}
