package p2p

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/mmogit/mmogit/internal/oniontransport"
	"github.com/mmogit/mmogit/internal/socks"
)

// TestConnectRefusedAddrs: a tor-only host asked to connect to an IP or
// DNS address of a peer it is already connected to (over onion) must say
// no, naming the mode and the address, rather than report success on the
// connection it has; and the refused address must not reach the peerstore.
func TestConnectRefusedAddrs(t *testing.T) {
	ctx := testCtx(t)
	e := newEnv(t)
	a, b := e.torHost("a"), e.torHost("b")
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: []ma.Multiaddr{onionAddr(t, "b")}}); err != nil {
		t.Fatal(err)
	}
	decoy, closeDecoy := trap(t)
	defer closeDecoy()
	for _, m := range []ma.Multiaddr{decoy, ma.StringCast("/dns4/example.com/tcp/7420")} {
		t.Run(m.String(), func(t *testing.T) {
			err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: []ma.Multiaddr{m}})
			if !errors.Is(err, ErrPolicy) {
				t.Fatalf("connect %s = %v, want ErrPolicy", m, err)
			}
			var pe *PolicyError
			if !errors.As(err, &pe) || pe.Mode != ModeTor || len(pe.Refused) != 1 || !pe.Refused[0].Equal(m) {
				t.Fatalf("error %#v: want a *PolicyError naming tor mode and %s", err, m)
			}
			if msg := err.Error(); !strings.Contains(msg, "tor mode") || !strings.Contains(msg, m.String()) {
				t.Errorf("error text %q names neither the mode nor the address", msg)
			}
			for _, k := range a.Host().Peerstore().Addrs(b.ID()) {
				if k.Equal(m) {
					t.Errorf("refused %s reached the peerstore", m)
				}
			}
			allowed, refused, mode, err := a.Dialable(b.ID(), []ma.Multiaddr{m, onionAddr(t, "b")})
			if err != nil || mode != ModeTor || len(allowed) != 1 || !allowed[0].Equal(onionAddr(t, "b")) || len(refused) != 1 {
				t.Errorf("Dialable = %v, %v, %s, %v: want only the onion address allowed", allowed, refused, mode, err)
			}
		})
	}
	// A mix still connects, over the allowed address only.
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: []ma.Multiaddr{decoy, onionAddr(t, "b")}}); err != nil {
		t.Fatalf("connect with one allowed address: %v", err)
	}
	// A peer with nothing known: the error says so.
	err := a.Connect(ctx, peer.AddrInfo{ID: testIdentity("c").PeerID()})
	if !errors.Is(err, ErrPolicy) || !strings.Contains(err.Error(), "no address") {
		t.Errorf("connect without addresses = %v", err)
	}
}

// flipDialer answers the first n dials to host with the fake tor's current
// rule (set by the test), then routes host to target.
type flipDialer struct {
	e      *env
	host   string
	target string
	n      int32
	dials  atomic.Int32
}

func (f *flipDialer) factory() func(peer.ID) oniontransport.ContextDialer {
	base := f.e.dialer()
	return func(p peer.ID) oniontransport.ContextDialer {
		d := base(p)
		return dialFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
			if f.dials.Add(1) == f.n+1 {
				f.e.srv.Route(f.host, f.target)
			}
			return d.DialContext(ctx, network, addr)
		})
	}
}

type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

func (f dialFunc) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return f(ctx, network, addr)
}

// TestHybridRetriesOnion: "descriptor not found" (F0) right after a peer
// publishes usually clears within a second. Hybrid must retry it within
// hybrid_timeout and connect over the onion, not fall back to direct (which
// shows the peer our IP) on the first quick error. Errors the peer can
// choose (client authorization is its onion service's setting; a service
// that never becomes reachable) fall back only once hybrid_timeout is up;
// only a failure on our side (tor refusing an address our checks passed)
// falls back at once. Every fallback logs the warning.
func TestHybridRetriesOnion(t *testing.T) {
	tests := []struct {
		name      string
		code      byte
		flipAfter int32
		timeout   time.Duration
		wantClass AddrClass
		wantDials int  // onion dials; -1: any
		wantWait  bool // direct only after timeout
	}{
		{"F0 twice then reachable", 0xF0, 2, 10 * time.Second, ClassOnion, 3, false},
		{"F0 until the timeout", 0xF0, 1000, 2 * time.Second, ClassDirect, -1, true},
		{"F4 client auth missing", 0xF4, 1000, 2 * time.Second, ClassDirect, 1, true},
		{"F5 client auth wrong", 0xF5, 1000, 2 * time.Second, ClassDirect, 1, true},
		{"F6 bad address", 0xF6, 1000, 10 * time.Second, ClassDirect, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			e := newEnv(t)
			bcfg := Config{Identity: testIdentity("b"), Mode: ModeHybrid, ListenTCP: []string{"/ip4/127.0.0.1/tcp/0"}}
			e.withOnion(&bcfg)
			b := newHost(t, bcfg)
			bOnion := testIdentity("b").OnionAddress()
			flip := &flipDialer{e: e, host: bOnion, target: bcfg.Onion.Listener.Addr().String(), n: tt.flipAfter}
			e.srv.Reply(bOnion, tt.code)
			logger, buf := captureLog()
			a := newHost(t, Config{Identity: testIdentity("a"), Mode: ModeHybrid, OnionDialer: flip.factory(),
				ListenTCP: []string{"/ip4/127.0.0.1/tcp/0"}, HybridTimeout: tt.timeout, Logger: logger})

			start := time.Now()
			if err := a.Connect(ctx, info(b)); err != nil {
				t.Fatalf("connect: %v", err)
			}
			took := time.Since(start)
			conns := a.Host().Network().ConnsToPeer(b.ID())
			if len(conns) == 0 {
				t.Fatal("no connection")
			}
			for _, c := range conns {
				if got := Classify(c.RemoteMultiaddr()); got != tt.wantClass {
					t.Errorf("connection over %s, want class %d", c.RemoteMultiaddr(), tt.wantClass)
				}
			}
			if got := int(flip.dials.Load()); tt.wantDials >= 0 && got != tt.wantDials {
				t.Errorf("%d onion dials, want %d", got, tt.wantDials)
			}
			switch {
			case tt.wantWait && took < tt.timeout:
				t.Errorf("fell back to direct after %s, before hybrid_timeout %s", took, tt.timeout)
			case !tt.wantWait && took >= tt.timeout/2:
				t.Errorf("took %s: want no wait for hybrid_timeout %s", took, tt.timeout)
			}
			warned := strings.Contains(buf.String(), "now sees this agent's IP address")
			if warned != (tt.wantClass == ClassDirect) {
				t.Errorf("fallback warning logged = %v, want %v:\n%s", warned, tt.wantClass == ClassDirect, buf.String())
			}
		})
	}
}

// TestLocalFailure: only failures on this agent's side count as local,
// whether bare or inside the swarm's DialError.
func TestLocalFailure(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"bad address", &socks.Error{Kind: socks.ErrBadAddress}, true},
		{"not a socks proxy", &socks.Error{Kind: socks.ErrSocksProxy}, true},
		{"tor not running", &socks.Error{Kind: socks.ErrDaemonNotRunning}, true},
		{"no onion dialer", oniontransport.ErrNoDialer, true},
		{"client auth", &socks.Error{Kind: socks.ErrOnionAuth}, false},
		{"unreachable", &socks.Error{Kind: socks.ErrOnionServiceUnreachable}, false},
		{"handshake", errors.New("noise: peer id mismatch"), false},
		{"dial error, all local", &swarm.DialError{DialErrors: []swarm.TransportError{
			{Cause: &socks.Error{Kind: socks.ErrBadAddress}}, {Cause: &socks.Error{Kind: socks.ErrSocksProxy}}}}, true},
		{"dial error, one peer-chosen", &swarm.DialError{DialErrors: []swarm.TransportError{
			{Cause: &socks.Error{Kind: socks.ErrBadAddress}}, {Cause: &socks.Error{Kind: socks.ErrOnionAuth}}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := localFailure(fmt.Errorf("p2p: connect: %w", tt.err)); got != tt.want {
				t.Errorf("localFailure(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// TestConnectingPruned: the per-peer lock that serializes hybrid connects
// is dropped when the connect ends; the DHT dials ever new peers, so
// keeping one per peer ever dialed grows without bound.
func TestConnectingPruned(t *testing.T) {
	ctx := testCtx(t)
	// A port nobody listens on: each connect fails at once.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", l.Addr().(*net.TCPAddr).Port))
	l.Close()
	e := newEnv(t)
	a := newHost(t, Config{Identity: testIdentity("a"), Mode: ModeHybrid, OnionDialer: e.dialer(),
		ListenTCP: []string{"/ip4/127.0.0.1/tcp/0"}, HybridTimeout: time.Second})
	const n = 50
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A direct-only peer that is not there: the connect fails.
			p := testIdentity(fmt.Sprint("gone", i)).PeerID()
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			_ = a.Connect(cctx, peer.AddrInfo{ID: p, Addrs: []ma.Multiaddr{gone}})
		}()
	}
	wg.Wait()
	if got := a.connecting.len(); got != 0 {
		t.Errorf("%d per-peer connect locks left after %d connects ended", got, n)
	}
}

// TestImplicitDirectDialWarns: in hybrid mode a dial the swarm makes on
// its own (the DHT opening a stream) to a peer with only direct addresses
// shows it our IP just as Connect's fallback does, and must warn the same.
func TestImplicitDirectDialWarns(t *testing.T) {
	ctx := testCtx(t)
	e := newEnv(t)
	b := directHost(t, "b")
	logger, buf := captureLog()
	a := newHost(t, Config{Identity: testIdentity("a"), Mode: ModeHybrid, OnionDialer: e.dialer(),
		ListenTCP: []string{"/ip4/127.0.0.1/tcp/0"}, HybridTimeout: time.Second, Logger: logger})
	a.Host().Peerstore().AddAddrs(b.ID(), b.Addrs(), time.Hour)
	s, err := a.Host().NewStream(ctx, b.ID(), "/ipfs/ping/1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	s.Reset()
	if !strings.Contains(buf.String(), "now sees this agent's IP address") {
		t.Errorf("implicit direct dial without the IP warning:\n%s", buf.String())
	}
}

// TestProtocolDialsFollowPolicy: protocols (kad-dht, discovery's
// bootstrap) dial through Host().Connect, and the swarm dials on its own
// for a stream to an unconnected peer. In hybrid mode neither may reach a
// peer directly before its onion address was tried, nor without the
// warning that the peer now sees our IP.
func TestProtocolDialsFollowPolicy(t *testing.T) {
	newPair := func(t *testing.T, e *env) (a, b *Host, buf *syncBuffer) {
		bcfg := Config{Identity: testIdentity("b"), Mode: ModeHybrid, ListenTCP: []string{"/ip4/127.0.0.1/tcp/0"}}
		e.withOnion(&bcfg)
		b = newHost(t, bcfg)
		logger, buf := captureLog()
		a = newHost(t, Config{Identity: testIdentity("a"), Mode: ModeHybrid, OnionDialer: e.dialer(),
			ListenTCP: []string{"/ip4/127.0.0.1/tcp/0"}, HybridTimeout: 5 * time.Second, Logger: logger})
		return a, b, buf
	}
	t.Run("Host().Connect falls back with the warning", func(t *testing.T) {
		ctx := testCtx(t)
		e := newEnv(t)
		a, b, buf := newPair(t, e)
		e.srv.Reply(testIdentity("b").OnionAddress(), 0xF6) // not retryable: falls back at once
		if err := a.Host().Connect(ctx, info(b)); err != nil {
			t.Fatal(err)
		}
		if d := a.Dials(); len(d) == 0 || Classify(d[0].Addr) != ClassOnion {
			t.Errorf("dials %+v: want the onion address first", d)
		}
		if !strings.Contains(buf.String(), "now sees this agent's IP address") {
			t.Errorf("direct connection without the warning:\n%s", buf.String())
		}
	})
	t.Run("stream to an unconnected peer dials the onion only", func(t *testing.T) {
		ctx := testCtx(t)
		e := newEnv(t)
		a, b, _ := newPair(t, e)
		a.Host().Peerstore().AddAddrs(b.ID(), b.Addrs(), time.Hour)
		s, err := a.Host().NewStream(ctx, b.ID(), "/ipfs/ping/1.0.0")
		if err != nil {
			t.Fatal(err)
		}
		s.Reset()
		for _, c := range a.Host().Network().ConnsToPeer(b.ID()) {
			if Classify(c.RemoteMultiaddr()) != ClassOnion {
				t.Errorf("implicit dial connected over %s", c.RemoteMultiaddr())
			}
		}
		for _, d := range a.Dials() {
			if d.Allowed && Classify(d.Addr) != ClassOnion {
				t.Errorf("gater allowed an implicit direct dial: %s", d.Addr)
			}
		}
	})
	t.Run("tor host: Host().Connect refuses an IP", func(t *testing.T) {
		e := newEnv(t)
		a := e.torHost("a")
		decoy, closeDecoy := trap(t)
		defer closeDecoy()
		err := a.Host().Connect(testCtx(t), peer.AddrInfo{ID: testIdentity("b").PeerID(), Addrs: []ma.Multiaddr{decoy}})
		if !errors.Is(err, ErrPolicy) {
			t.Fatalf("Host().Connect = %v, want ErrPolicy", err)
		}
	})
}
