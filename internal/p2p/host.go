// Package p2p is the agent's libp2p host, with the transport policy
// (direct, tor or hybrid; global and per peer) enforced in one place.
//
// The host is built from a fixed recipe (docs/spec-notes.md, "libp2p over Tor"):
// Noise, yamux, explicit resource limits with an onion-aware connection rate
// limiter, a neutral user agent, no relay, NAT port mapping, AutoNAT, hole
// punching or mDNS, a multiaddr resolver that refuses every DNS lookup, and
// dial timeouts sized for onion circuits. Which addresses may be dialed,
// accepted and announced is decided by the pure functions in policy.go and
// enforced twice: Host.Connect filters addresses before dialing, and a
// connection gater refuses whatever the swarm would dial on its own.
//
// In tor mode the host has no TCP transport and no TCP listener at all, only
// the onion transport; it announces only /onion3 and never dials an IP.
package p2p

import (
	"context"
	"errors"
	"fmt"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/oniontransport"
)

// UserAgent is what identify tells peers. The libp2p default names the
// go-libp2p version, which narrows down who runs an onion service.
const UserAgent = "mmogit"

// Defaults for Config's durations.
const (
	// DefaultDialTimeout: libp2p's 15 s is too short for a cold onion
	// rendezvous on the public network.
	DefaultDialTimeout = 60 * time.Second
	// DefaultHybridTimeout is how long hybrid mode waits for an onion
	// connection before dialing directly.
	DefaultHybridTimeout = 30 * time.Second
)

// OnionListener is the inbound side of the agent's onion service.
type OnionListener struct {
	// Listener is the local socket tor's onion service forwards to.
	Listener net.Listener
	// Address is the service's v3 onion address (with or without ".onion").
	// It must be the identity's own address.
	Address string
	// Port is the service's virtual port (what peers dial).
	Port int
}

// Config configures a Host.
type Config struct {
	// Identity is the agent's key; it is also the libp2p key, so the peer
	// ID is the agent identity. Required.
	Identity *identity.Identity
	// Mode is the global transport policy. Empty means ModeTor: the
	// default fails closed.
	Mode Mode
	// PeerModes overrides Mode for single peers. Under a tor-only Mode an
	// override cannot loosen the policy: "direct" refuses the peer and
	// "hybrid" means tor (see EffectiveMode).
	PeerModes map[peer.ID]Mode
	// ListenTCP are TCP multiaddrs to listen on, e.g. "/ip4/127.0.0.1/tcp/0".
	// Direct and hybrid only; tor mode refuses them.
	ListenTCP []string
	// Onion, if set, accepts inbound connections through the agent's onion
	// service and announces its /onion3 address.
	Onion *OnionListener
	// OnionDialer returns the SOCKS dialer for one peer (so each peer gets
	// its own tor circuit isolation). Required in tor and hybrid mode; in
	// direct mode it enables onion dials to peers overridden to tor/hybrid.
	OnionDialer func(peer.ID) oniontransport.ContextDialer
	// HybridTimeout is how long hybrid mode tries a peer's onion addresses
	// before falling back to direct ones. Zero means DefaultHybridTimeout.
	HybridTimeout time.Duration
	// DialTimeout bounds each dial (libp2p.WithDialTimeout and the onion
	// transport's SOCKS dial). Zero means DefaultDialTimeout.
	DialTimeout time.Duration
	// Logger receives the hybrid fallback warning and little else. Nil
	// means silent.
	Logger *slog.Logger
	// Limits are the resource limits; zero fields take defaults.
	Limits Limits
}

// Host is the agent's libp2p host.
type Host struct {
	h             host.Host
	ph            policyHost // h with Connect under the policy, for protocols
	mode          Mode
	gater         *gater
	resolver      *refusingResolver
	rm            network.ResourceManager
	log           *slog.Logger
	hybridTimeout time.Duration
	connecting    peerLocks // serializes hybrid phases per peer

	// mu guards peerModes.
	mu        sync.RWMutex
	peerModes map[peer.ID]Mode
}

// New builds and starts the host.
func New(ctx context.Context, cfg Config) (*Host, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cfg.Identity == nil {
		return nil, errors.New("p2p: config has no identity")
	}
	if cfg.Mode == "" {
		cfg.Mode = ModeTor
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.HybridTimeout <= 0 {
		cfg.HybridTimeout = DefaultHybridTimeout
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	hst := &Host{
		mode:          cfg.Mode,
		resolver:      &refusingResolver{},
		log:           cfg.Logger,
		hybridTimeout: cfg.HybridTimeout,
		peerModes:     make(map[peer.ID]Mode, len(cfg.PeerModes)),
	}
	if hst.log == nil {
		hst.log = slog.New(slog.DiscardHandler)
	}
	for p, m := range cfg.PeerModes {
		hst.peerModes[p] = m
	}
	hst.gater = newGater(cfg.Mode, hst.PeerMode)
	hst.gater.log = hst.log
	rm, err := newResourceManager(cfg.Limits.withDefaults())
	if err != nil {
		return nil, err
	}
	hst.rm = rm
	opts, err := hst.options(cfg)
	if err != nil {
		rm.Close()
		return nil, err
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("p2p: new host: %w", err)
	}
	hst.h = h
	hst.ph = policyHost{Host: h, p: hst}
	hst.gater.setPeerAddrs(h.Peerstore().Addrs)
	return hst, nil
}

// policyHost is the libp2p host as protocols see it: its Connect is
// Host.Connect, so address filtering and the hybrid order (onion first,
// direct only after the onion phase, with the warning) apply to every
// Connect a protocol makes — kad-dht dials peers this way, and so does
// discovery's bootstrap — not only to the agent's own.
type policyHost struct {
	host.Host
	p *Host
}

func (ph policyHost) Connect(ctx context.Context, pi peer.AddrInfo) error {
	return ph.p.Connect(ctx, pi)
}

func (cfg *Config) check() error {
	if !cfg.Mode.Valid() {
		return fmt.Errorf("p2p: unknown transport mode %q", cfg.Mode)
	}
	for p, m := range cfg.PeerModes {
		if !m.Valid() {
			return fmt.Errorf("p2p: peer %s: unknown transport mode %q", p, m)
		}
	}
	if cfg.Mode == ModeTor && len(cfg.ListenTCP) > 0 {
		return fmt.Errorf("%w: tor mode cannot listen on TCP %v", ErrPolicy, cfg.ListenTCP)
	}
	if cfg.Mode != ModeDirect && cfg.OnionDialer == nil {
		return fmt.Errorf("p2p: %s mode needs an OnionDialer", cfg.Mode)
	}
	if cfg.OnionDialer == nil {
		for p, m := range cfg.PeerModes {
			if m != ModeDirect {
				return fmt.Errorf("p2p: peer %s is set to %s but the host has no OnionDialer (tor is not running)", p, m)
			}
		}
	}
	if o := cfg.Onion; o != nil {
		pid, err := identity.PeerIDFromOnion(o.Address)
		if err != nil {
			return fmt.Errorf("p2p: onion listener: %w", err)
		}
		if pid != cfg.Identity.PeerID() {
			return fmt.Errorf("p2p: onion listener address %s is not this identity's", o.Address)
		}
	}
	return nil
}

// options is the libp2p recipe for cfg.
func (hst *Host) options(cfg Config) ([]libp2p.Option, error) {
	listen, err := listenAddrs(cfg)
	if err != nil {
		return nil, err
	}
	// The default connection manager trims only above 192 connections,
	// above our inbound limit, so a flood holding every inbound slot was
	// never trimmed. Trim below the limit (kad-dht protects its routing
	// table peers from trimming).
	lim := cfg.Limits.withDefaults()
	cm, err := connmgr.NewConnManager(lim.MaxConns/4, lim.MaxConns/2-lim.MaxConns/8, connmgr.WithGracePeriod(30*time.Second))
	if err != nil {
		return nil, fmt.Errorf("p2p: connection manager: %w", err)
	}
	ps, err := newPeerstore()
	if err != nil {
		return nil, err
	}
	mode := cfg.Mode
	opts := []libp2p.Option{
		libp2p.Identity(cfg.Identity.Libp2pKey()),
		libp2p.NoTransports, // resets the default list (tcp, quic, websocket, webrtc)
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ResourceManager(hst.rm),
		libp2p.Peerstore(ps),
		libp2p.ConnectionManager(cm),
		libp2p.ConnectionGater(hst.gater),
		libp2p.MultiaddrResolver(hst.resolver),
		libp2p.UserAgent(UserAgent),
		libp2p.DisableRelay(),
		// Observed addresses would make the host announce whatever IP
		// peers saw; an agent announces only what it was told to listen on.
		libp2p.DisableIdentifyAddressDiscovery(),
		libp2p.ForceReachabilityPrivate(),
		libp2p.DisableMetrics(),
		libp2p.WithDialTimeout(cfg.DialTimeout),
		libp2p.AddrsFactory(func(addrs []ma.Multiaddr) []ma.Multiaddr { return Announce(mode, addrs) }),
		libp2p.Ping(true),
	}
	if len(listen) == 0 {
		opts = append(opts, libp2p.NoListenAddrs)
	} else {
		opts = append(opts, libp2p.ListenAddrs(listen...))
	}
	if mode != ModeTor {
		opts = append(opts, libp2p.Transport(tcp.NewTCPTransport))
	}
	if cfg.OnionDialer != nil || cfg.Onion != nil {
		// libp2p.Transport takes its constructor's options as ...any.
		topts := []any{oniontransport.WithDialTimeout(cfg.DialTimeout)}
		if cfg.OnionDialer != nil {
			topts = append(topts, oniontransport.WithDialer(cfg.OnionDialer))
		}
		if o := cfg.Onion; o != nil {
			topts = append(topts, oniontransport.WithListener(o.Listener, o.Address, o.Port))
		}
		opts = append(opts, libp2p.Transport(oniontransport.New, topts...))
	}
	return opts, nil
}

func listenAddrs(cfg Config) ([]ma.Multiaddr, error) {
	var out []ma.Multiaddr
	for _, s := range cfg.ListenTCP {
		m, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("p2p: listen address %q: %w", s, err)
		}
		if Classify(m) != ClassDirect {
			return nil, fmt.Errorf("p2p: listen address %q is not /ip4|/ip6/.../tcp/...", s)
		}
		out = append(out, m)
	}
	if o := cfg.Onion; o != nil {
		m, err := oniontransport.Multiaddr(o.Address, o.Port)
		if err != nil {
			return nil, fmt.Errorf("p2p: onion listener: %w", err)
		}
		out = append(out, m)
	}
	return out, nil
}

// Host is the underlying libp2p host, for protocols (DHT, sync) to use.
// Its Connect is Host.Connect (see policyHost); everything else is the
// libp2p host's.
func (hst *Host) Host() host.Host { return hst.ph }

// ID is the agent's peer ID.
func (hst *Host) ID() peer.ID { return hst.h.ID() }

// Mode is the global transport mode.
func (hst *Host) Mode() Mode { return hst.mode }

// Addrs are the multiaddrs the host announces (identify, DHT records).
func (hst *Host) Addrs() []ma.Multiaddr { return hst.h.Addrs() }

// PeerMode returns p's override, "" if it has none.
func (hst *Host) PeerMode(p peer.ID) Mode {
	hst.mu.RLock()
	defer hst.mu.RUnlock()
	return hst.peerModes[p]
}

// SetPeerMode sets (or with "" removes) p's override. It applies to new
// connections; existing ones are not closed.
func (hst *Host) SetPeerMode(p peer.ID, m Mode) error {
	if m != "" && !m.Valid() {
		return fmt.Errorf("p2p: unknown transport mode %q", m)
	}
	hst.mu.Lock()
	defer hst.mu.Unlock()
	if m == "" {
		delete(hst.peerModes, p)
	} else {
		hst.peerModes[p] = m
	}
	return nil
}

// Dials returns the outgoing addresses the connection gater was asked
// about, oldest first (the most recent few thousand), and whether each was
// allowed. It exists so tests and diagnostics can prove what the host tried.
func (hst *Host) Dials() []Dial { return hst.gater.Dials() }

// Close shuts the host down.
func (hst *Host) Close() error {
	err := hst.h.Close()
	if rerr := hst.rm.Close(); err == nil {
		err = rerr
	}
	return err
}

// Ping measures one round trip to p with the libp2p ping protocol,
// connecting first if needed (under the same policy as Connect's gater).
func (hst *Host) Ping(ctx context.Context, p peer.ID) (time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	select {
	case r, ok := <-ping.Ping(ctx, hst.h, p):
		if !ok {
			return 0, fmt.Errorf("p2p: ping %s: %w", p, ctx.Err())
		}
		if r.Error != nil {
			return 0, fmt.Errorf("p2p: ping %s: %w", p, r.Error)
		}
		return r.RTT, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("p2p: ping %s: %w", p, ctx.Err())
	}
}
