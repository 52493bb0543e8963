package agent

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/mmogit/mmogit/internal/config"
)

// remoteConn is a network.Conn that only knows its remote address.
type remoteConn struct {
	network.Conn
	remote ma.Multiaddr
}

func (c remoteConn) RemoteMultiaddr() ma.Multiaddr { return c.remote }

// TestTransportLabelFromConnection: the transport shown for a connection
// (Connect's result, Peers) comes from that connection's remote address,
// whatever the configured mode: a TCP connection is "direct" even in tor
// mode, an /onion3 one is "tor" even in direct mode.
func TestTransportLabelFromConnection(t *testing.T) {
	const onion = "/onion3/25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid:7420"
	for _, mode := range []config.Transport{config.Tor, config.Hybrid, config.Direct} {
		a := &Agent{opts: Options{Config: config.Config{Transport: mode}}}
		for addr, want := range map[string]string{
			onion: "tor",
			onion + "/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN": "tor",
			"/ip4/127.0.0.1/tcp/7420":         "direct",
			"/ip6/::1/tcp/7420":               "direct",
			"/dns4/example.com/tcp/7420":      "direct",
			"/dns/example.com/tcp/7420":       "direct",
			"/ip4/192.0.2.1/udp/4001/quic-v1": "direct",
		} {
			c := remoteConn{remote: ma.StringCast(addr)}
			if got := a.connTransport(c); got != want {
				t.Errorf("mode %s, connection from %s: transport %q, want %q", mode, addr, got, want)
			}
		}
	}
}
