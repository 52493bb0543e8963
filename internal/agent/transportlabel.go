package agent

import (
	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"
)

// Transport labels the API shows for a connection.
const (
	labelTor    = "tor"
	labelDirect = "direct"
)

// connTransport says how a connection actually runs, from its own remote
// multiaddr and never from the configured mode: "tor" for an /onion3
// address (an outbound onion dial, or an inbound connection through the
// onion service, which oniontransport reports as this host's own /onion3
// address), "direct" for anything else (ip4, ip6, dns: the peer sees, or
// is, an IP address). Connect's result and Peers both use it.
func (a *Agent) connTransport(c network.Conn) string {
	return transportLabel(c.RemoteMultiaddr())
}

// transportLabel is connTransport for a multiaddr. Any /onion3 component
// makes it "tor"; nothing else can, so a label never claims anonymity a
// connection does not have.
func transportLabel(m ma.Multiaddr) string {
	for _, c := range m {
		if c.Protocol().Code == ma.P_ONION3 {
			return labelTor
		}
	}
	return labelDirect
}
