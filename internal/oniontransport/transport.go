// Package oniontransport is a go-libp2p transport for /onion3 multiaddrs.
//
// Dialing goes through a SOCKS5 dialer for tor (internal/socks), one dialer
// per peer so that tor isolates every peer on its own circuits. The onion
// name is always handed to the dialer as "<56>.onion:<port>" and never
// resolved locally. Because a v3 onion address is its service's Ed25519 key,
// and mmogit's peer ID is the same key, the transport refuses to dial an
// address that does not belong to the expected peer before anything leaves
// the machine.
//
// Listening does not open a socket of its own: tor's onion service forwards
// to a local listener that the caller owns (WithListener), and Listen on the
// matching /onion3 address wraps and upgrades it.
//
// Onion connections carry no IP multiaddrs. An outbound connection's remote
// address is the dialed /onion3 address; an inbound connection's remote is
// unknowable (tor hides it), so both its ends are reported as this host's
// own /onion3 listen address. Nothing about the SOCKS hop or tor's loopback
// forwarding reaches identify, the peerstore or the resource manager.
package oniontransport

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/transport"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// ContextDialer opens a stream through tor. *socks.Dialer satisfies it.
type ContextDialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// DefaultDialTimeout bounds one SOCKS dial (circuit + rendezvous). A fresh
// onion rendezvous usually takes well under 10 s, but tor can sit on a dial
// to a removed service for its 120 s SocksTimeout, so the transport keeps its
// own limit.
const DefaultDialTimeout = 60 * time.Second

// Option configures a Transport.
type Option func(*Transport) error

// WithDialer sets the per-peer dialer factory. It is called once per dial
// with the peer being dialed, so each peer can get its own SOCKS isolation
// credentials (socks.Dialer.ForPeer).
func WithDialer(f func(p peer.ID) ContextDialer) Option {
	return func(t *Transport) error {
		t.dialer = f
		return nil
	}
}

// WithListener sets the local listener tor's onion service forwards to,
// and the service's onion address and virtual port. Listen on
// /onion3/<onionAddr>:<virtPort> then accepts from ln.
func WithListener(ln net.Listener, onionAddr string, virtPort int) Option {
	return func(t *Transport) error {
		m, err := Multiaddr(onionAddr, virtPort)
		if err != nil {
			return err
		}
		t.ln, t.lnAddr = ln, m
		return nil
	}
}

// WithDialTimeout bounds the SOCKS dial of each connection (not the
// security handshake that follows, which the caller's context bounds).
func WithDialTimeout(d time.Duration) Option {
	return func(t *Transport) error {
		if d <= 0 {
			return fmt.Errorf("oniontransport: dial timeout %v must be positive", d)
		}
		t.dialTimeout = d
		return nil
	}
}

// Transport dials and accepts libp2p connections over tor onion services.
type Transport struct {
	upgrader    transport.Upgrader
	rcmgr       network.ResourceManager
	dialer      func(peer.ID) ContextDialer
	dialTimeout time.Duration

	ln     net.Listener
	lnAddr ma.Multiaddr // nil without WithListener

	mu        sync.Mutex // mu guards listening
	listening bool
}

var _ transport.Transport = (*Transport)(nil)

// New builds a Transport. Its shape fits libp2p.Transport(New, opts...).
func New(up transport.Upgrader, rcmgr network.ResourceManager, opts ...Option) (*Transport, error) {
	if rcmgr == nil {
		rcmgr = &network.NullResourceManager{}
	}
	t := &Transport{upgrader: up, rcmgr: rcmgr, dialTimeout: DefaultDialTimeout}
	for _, o := range opts {
		if err := o(t); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// CanDial reports whether addr is a single /onion3 component. It does not
// verify the checksum; Dial does, and says why.
func (t *Transport) CanDial(addr ma.Multiaddr) bool { return IsOnion(addr) }

// Protocols is {P_ONION3}.
func (t *Transport) Protocols() []int { return []int{ma.P_ONION3} }

// Proxy is true: the swarm must hand /onion3 addresses to this transport
// whole rather than look for a transport for their last component.
func (t *Transport) Proxy() bool { return true }

func (t *Transport) String() string { return "onion3" }

// Dial opens an upgraded connection to peer p at raddr through tor.
func (t *Transport) Dial(ctx context.Context, raddr ma.Multiaddr, p peer.ID) (transport.CapableConn, error) {
	a, err := Parse(raddr)
	if err != nil {
		return nil, err
	}
	if err := a.CheckPeer(p); err != nil {
		return nil, err
	}
	if t.dialer == nil {
		return nil, ErrNoDialer
	}
	scope, err := t.rcmgr.OpenConnection(network.DirOutbound, true, raddr)
	if err != nil {
		return nil, fmt.Errorf("oniontransport: resource manager: %w", err)
	}
	c, err := t.dialWithScope(ctx, a, p, scope)
	if err != nil {
		scope.Done()
		return nil, err
	}
	return c, nil
}

func (t *Transport) dialWithScope(ctx context.Context, a Addr, p peer.ID, scope network.ConnManagementScope) (transport.CapableConn, error) {
	if err := scope.SetPeer(p); err != nil {
		return nil, fmt.Errorf("oniontransport: resource manager: %w", err)
	}
	dctx, cancel := context.WithTimeout(ctx, t.dialTimeout)
	defer cancel()
	nc, err := t.dialer(p).DialContext(dctx, "tcp", a.Hostport())
	if err != nil {
		return nil, fmt.Errorf("oniontransport: dial %s: %w", a.Host, err)
	}
	local := t.lnAddr
	if local == nil {
		// An anonymous client has no address of its own to report.
		local = a.Multiaddr()
	}
	mc := &conn{Conn: nc, local: local, remote: a.Multiaddr()}
	dir := network.DirOutbound
	if ok, isClient, _ := network.GetSimultaneousConnect(ctx); ok && !isClient {
		dir = network.DirInbound
	}
	// Upgrade calls scope.Done on failure, as Dial does; Done is idempotent.
	c, err := t.upgrader.Upgrade(ctx, t, mc, dir, p, scope)
	if err != nil {
		return nil, fmt.Errorf("oniontransport: upgrade %s: %w", a.Host, err)
	}
	return c, nil
}

// Listen returns the configured listener, wrapped and upgraded, for the
// matching /onion3 address. It can be listened on once at a time.
func (t *Transport) Listen(laddr ma.Multiaddr) (transport.Listener, error) {
	if t.lnAddr == nil || !laddr.Equal(t.lnAddr) {
		return nil, fmt.Errorf("%w: %s", ErrNoListener, laddr)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.listening {
		return nil, fmt.Errorf("oniontransport: already listening on %s", laddr)
	}
	t.listening = true
	ml := &maListener{Listener: t.ln, addr: t.lnAddr, done: func() {
		t.mu.Lock()
		t.listening = false
		t.mu.Unlock()
	}}
	return t.upgrader.UpgradeGatedMaListener(t, t.upgrader.GateMaListener(ml)), nil
}

// conn is a net.Conn with onion multiaddrs; see the package comment.
type conn struct {
	net.Conn
	local, remote ma.Multiaddr
}

var _ manet.Conn = (*conn)(nil)

func (c *conn) LocalMultiaddr() ma.Multiaddr  { return c.local }
func (c *conn) RemoteMultiaddr() ma.Multiaddr { return c.remote }

// maListener adapts the onion service's target listener to manet.Listener.
type maListener struct {
	net.Listener
	addr ma.Multiaddr
	once sync.Once
	done func()
}

var _ manet.Listener = (*maListener)(nil)

func (l *maListener) Accept() (manet.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &conn{Conn: nc, local: l.addr, remote: l.addr}, nil
}

func (l *maListener) Multiaddr() ma.Multiaddr { return l.addr }

func (l *maListener) Close() error {
	err := l.Listener.Close()
	l.once.Do(l.done)
	return err
}
