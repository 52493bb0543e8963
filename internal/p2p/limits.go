package p2p

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/host/peerstore/pstoremem"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/x/rate"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Limits are the host's resource limits. Zero fields take the defaults
// shown.
type Limits struct {
	// MaxConns bounds open connections (default 256). kad-dht keeps ~40
	// onion circuits open on its own.
	MaxConns int
	// MaxStreams bounds open streams (default 2048).
	MaxStreams int
	// MaxMemory bounds memory reserved by muxers, in bytes (default 256 MiB).
	MaxMemory int64
	// OnionConnRate and OnionConnBurst limit new inbound onion connections
	// per second (default 5/s, burst 64). Onion connections have no IP, so
	// libp2p's default limiter puts them all in one bucket of 0.2/s, which
	// starves a DHT of onion peers; outbound onion dials are this agent's own
	// and are not rate-limited.
	OnionConnRate  float64
	OnionConnBurst int
}

func (l Limits) withDefaults() Limits {
	if l.MaxConns <= 0 {
		l.MaxConns = 256
	}
	if l.MaxStreams <= 0 {
		l.MaxStreams = 2048
	}
	if l.MaxMemory <= 0 {
		l.MaxMemory = 256 << 20
	}
	if l.OnionConnRate <= 0 {
		l.OnionConnRate = 5
	}
	if l.OnionConnBurst <= 0 {
		l.OnionConnBurst = 64
	}
	return l
}

// Peerstore bounds. libp2p's in-memory peerstore keeps up to a million
// addresses of peers we are not connected to (DHT answers add them for two
// minutes each); any peer can name fresh peer IDs by the thousand in its
// answers, so the book is capped far lower. Addresses of connected peers
// are not counted, so a flood cannot push out the peers we talk to; past
// the cap new unconnected addresses are dropped until old ones expire.
const (
	MaxPeerAddrs         = 16384
	MaxAddrsPerPeer      = 16
	MaxSignedPeerRecords = 4096
	MaxProtocolsPerPeer  = 128
)

// newPeerstore is libp2p's in-memory peerstore with the bounds above.
// Peers that disconnect are removed by the host's peerstore manager
// (go-libp2p's pstoremanager, on by default) after a grace period.
func newPeerstore() (peerstore.Peerstore, error) {
	ps, err := pstoremem.NewPeerstore(
		pstoremem.WithMaxAddresses(MaxPeerAddrs),
		pstoremem.WithMaxAddressesPerPeer(MaxAddrsPerPeer),
		pstoremem.WithMaxSignedPeerRecords(MaxSignedPeerRecords),
		pstoremem.WithMaxProtocols(MaxProtocolsPerPeer),
	)
	if err != nil {
		return nil, fmt.Errorf("p2p: peerstore: %w", err)
	}
	return ps, nil
}

// newResourceManager builds libp2p's resource manager with explicit limits
// and connection rate limits that tell onion connections apart.
//
// x/rate sends an address without an IP down its IPv6 path with the zero
// prefix, so any IPv6 subnet limit would also throttle all onion connections
// as one subnet. The inner manager therefore rate-limits IPv4 only (loopback
// exempt, as in libp2p's defaults), and the wrapper applies libp2p's default
// IPv6 subnet limits itself and a separate bucket to inbound onion
// connections.
func newResourceManager(l Limits) (network.ResourceManager, error) {
	scaling := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&scaling)
	base := scaling.AutoScale()
	conns, streams := rcmgr.LimitVal(l.MaxConns), rcmgr.LimitVal(l.MaxStreams)
	limits := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			Conns:           conns,
			ConnsInbound:    rcmgr.LimitVal(l.MaxConns / 2),
			ConnsOutbound:   conns,
			Streams:         streams,
			StreamsInbound:  rcmgr.LimitVal(l.MaxStreams / 2),
			StreamsOutbound: streams,
			Memory:          rcmgr.LimitVal64(l.MaxMemory),
		},
		// Connections sit in the transient scope until their handshake
		// names the peer. libp2p sizes that scope from the machine's memory
		// (32 inbound plus 16 per GiB/8), so a burst of legitimate peers
		// connecting at once was refused on small machines long before
		// MaxConns. Bound handshakes by the same explicit limits instead;
		// the rate limiters still throttle floods per IP and for onions.
		Transient: rcmgr.ResourceLimits{
			Conns:         conns,
			ConnsInbound:  rcmgr.LimitVal(l.MaxConns / 2),
			ConnsOutbound: conns,
		},
	}.Build(base)
	ipv4 := &rate.Limiter{
		NetworkPrefixLimits: []rate.PrefixLimit{
			{Prefix: netip.MustParsePrefix("127.0.0.0/8")},
			{Prefix: netip.MustParsePrefix("::1/128")},
		},
		SubnetRateLimiter: rate.SubnetLimiter{
			IPv4SubnetLimits: []rate.SubnetLimit{{PrefixLength: 32, Limit: rate.Limit{RPS: 0.2, Burst: 16}}},
			GracePeriod:      time.Minute,
		},
	}
	inner, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits), rcmgr.WithConnRateLimiters(ipv4))
	if err != nil {
		return nil, fmt.Errorf("p2p: resource manager: %w", err)
	}
	return &limitedRM{
		ResourceManager: inner,
		onionIn:         &rate.Limiter{GlobalLimit: rate.Limit{RPS: l.OnionConnRate, Burst: l.OnionConnBurst}},
		ipv6: &rate.SubnetLimiter{
			IPv6SubnetLimits: []rate.SubnetLimit{
				{PrefixLength: 56, Limit: rate.Limit{RPS: 0.2, Burst: 16}},
				{PrefixLength: 48, Limit: rate.Limit{RPS: 0.5, Burst: 80}},
			},
			GracePeriod: time.Minute,
		},
	}, nil
}

var errConnRate = errors.New("p2p: connection rate limit exceeded")

// limitedRM adds onion-aware connection rate limiting to a resource manager.
type limitedRM struct {
	network.ResourceManager
	onionIn *rate.Limiter
	ipv6    *rate.SubnetLimiter
	once    sync.Once
}

func (r *limitedRM) OpenConnection(dir network.Direction, usefd bool, endpoint ma.Multiaddr) (network.ConnManagementScope, error) {
	ip, err := manet.ToIP(endpoint)
	switch {
	case err != nil: // no IP: an onion connection
		if dir == network.DirInbound && !r.onionIn.Allow(netip.Addr{}) {
			return nil, errConnRate
		}
	default:
		if a, ok := netip.AddrFromSlice(ip); ok && a.Unmap().Is6() && !a.IsLoopback() && !r.ipv6.Allow(a, time.Now()) {
			return nil, errConnRate
		}
	}
	return r.ResourceManager.OpenConnection(dir, usefd, endpoint)
}

// Close is idempotent: libp2p closes the manager itself if New fails.
func (r *limitedRM) Close() error {
	var err error
	r.once.Do(func() { err = r.ResourceManager.Close() })
	return err
}

// refusingResolver is the host's multiaddr DNS resolver: it refuses every
// lookup. The swarm resolves /dns* and /dnsaddr before the connection gater
// runs, so any real resolver would leak the names of the peers this agent
// talks to to the local DNS server, tor mode or not.
type refusingResolver struct {
	lookups atomic.Int64
}

var errDNSRefused = errors.New("p2p: DNS multiaddrs are not resolved (DNS leak)")

var _ network.MultiaddrDNSResolver = (*refusingResolver)(nil)

func (r *refusingResolver) ResolveDNSAddr(context.Context, peer.ID, ma.Multiaddr, int, int) ([]ma.Multiaddr, error) {
	r.lookups.Add(1)
	return nil, errDNSRefused
}

func (r *refusingResolver) ResolveDNSComponent(context.Context, ma.Multiaddr, int) ([]ma.Multiaddr, error) {
	r.lookups.Add(1)
	return nil, errDNSRefused
}
