package p2p

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/onion"
	"github.com/mmogit/mmogit/internal/oniontransport"
	"github.com/mmogit/mmogit/internal/socks"
	"github.com/mmogit/mmogit/internal/socks/sockstest"
)

const testPort = 7420

func testIdentity(name string) *identity.Identity {
	s := sha256.Sum256([]byte("p2p test " + name))
	return identity.FromSeed(s[:])
}

// dialLog records every connection the onion transport asks for and where
// it really goes (the SOCKS proxy), for the leak test.
type dialLog struct {
	mu    sync.Mutex
	addrs []string // destinations asked for
	proxy []string // sockets actually opened
}

type loggingDialer struct {
	log *dialLog
	d   *socks.Dialer
}

func (l loggingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	l.log.mu.Lock()
	l.log.addrs = append(l.log.addrs, addr)
	l.log.proxy = append(l.log.proxy, l.d.ProxyAddr)
	l.log.mu.Unlock()
	return l.d.DialContext(ctx, network, addr)
}

// env is one fake tor (a sockstest server) shared by the hosts of a test.
type env struct {
	t   *testing.T
	srv *sockstest.Server
	log *dialLog
}

func newEnv(t *testing.T) *env {
	return &env{t: t, srv: sockstest.NewServer(t), log: &dialLog{}}
}

func (e *env) dialer() func(peer.ID) oniontransport.ContextDialer {
	base := &socks.Dialer{ProxyAddr: e.srv.Addr(), Timeout: 10 * time.Second}
	return func(p peer.ID) oniontransport.ContextDialer {
		return loggingDialer{log: e.log, d: base.ForPeer(p.String())}
	}
}

// withOnion gives cfg an onion service: a local listener that the fake tor
// routes the identity's onion name to.
func (e *env) withOnion(cfg *Config) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	cfg.Onion = &OnionListener{Listener: ln, Address: cfg.Identity.OnionAddress(), Port: testPort}
	e.srv.Route(cfg.Identity.OnionAddress(), ln.Addr().String())
	if cfg.OnionDialer == nil {
		cfg.OnionDialer = e.dialer()
	}
}

func newHost(t testing.TB, cfg Config) *Host {
	t.Helper()
	h, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func (e *env) torHost(name string) *Host {
	cfg := Config{Identity: testIdentity(name), Mode: ModeTor, OnionDialer: e.dialer()}
	e.withOnion(&cfg)
	return newHost(e.t, cfg)
}

func directHost(t testing.TB, name string) *Host {
	return newHost(t, Config{Identity: testIdentity(name), Mode: ModeDirect, ListenTCP: []string{"/ip4/127.0.0.1/tcp/0"}})
}

func info(h *Host) peer.AddrInfo { return peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()} }

func onionAddr(t testing.TB, name string) ma.Multiaddr {
	m, err := oniontransport.Multiaddr(testIdentity(name).OnionAddress(), testPort)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestDirectConnectPing(t *testing.T) {
	ctx := testCtx(t)
	a, b := directHost(t, "a"), directHost(t, "b")
	if err := a.Connect(ctx, info(b)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Ping(ctx, b.ID()); err != nil {
		t.Fatal(err)
	}
	// b identifies a on its own schedule; a's ping does not wait for it.
	var av any
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if av, _ = b.Host().Peerstore().Get(a.ID(), "AgentVersion"); av != nil {
			break
		}
	}
	if av != UserAgent {
		t.Errorf("agent version seen by peer = %v, want %q", av, UserAgent)
	}
}

func TestTorModeOnlyOnion(t *testing.T) {
	ctx := testCtx(t)
	e := newEnv(t)
	a, b := e.torHost("a"), e.torHost("b")

	for _, h := range []*Host{a, b} {
		addrs := h.Addrs()
		if len(addrs) != 1 || !addrs[0].Equal(onionAddr(t, nameOf(h))) {
			t.Fatalf("tor host announces %v, want only its /onion3", addrs)
		}
	}
	// A has both an IP and the onion address for B; only the onion is dialed.
	decoy, closeDecoy := trap(t)
	defer closeDecoy()
	pi := peer.AddrInfo{ID: b.ID(), Addrs: []ma.Multiaddr{decoy, onionAddr(t, "b")}}
	if err := a.Connect(ctx, pi); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Ping(ctx, b.ID()); err != nil {
		t.Fatal(err)
	}
	for _, d := range a.Dials() {
		if Classify(d.Addr) != ClassOnion {
			t.Errorf("gater saw a non-onion dial: %+v", d)
		}
	}
	// Identify delivered only onion addresses, both ways.
	for _, pair := range [][2]*Host{{a, b}, {b, a}} {
		for _, m := range pair[0].Host().Peerstore().Addrs(pair[1].ID()) {
			if _, err := manet.ToIP(m); err == nil {
				t.Errorf("%s learned an IP address of tor-only %s: %s", nameOf(pair[0]), nameOf(pair[1]), m)
			}
		}
	}
	// The connection itself carries no IP on either side.
	for _, pair := range [][2]*Host{{a, b}, {b, a}} {
		for _, c := range pair[0].Host().Network().ConnsToPeer(pair[1].ID()) {
			for _, m := range []ma.Multiaddr{c.LocalMultiaddr(), c.RemoteMultiaddr()} {
				if Classify(m) != ClassOnion {
					t.Errorf("%s's connection carries %s", nameOf(pair[0]), m)
				}
			}
		}
	}
}

// trap is an /ip4 address with a listener behind it that fails the test if
// anything connects.
func trap(t *testing.T) (ma.Multiaddr, func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Errorf("something dialed the trap address directly from %s", c.RemoteAddr())
			c.Close()
		}
	}()
	m, _ := manet.FromNetAddr(ln.Addr())
	return m, func() { ln.Close() }
}

func nameOf(h *Host) string {
	for _, n := range []string{"a", "b", "c", "d"} {
		if testIdentity(n).PeerID() == h.ID() {
			return n
		}
	}
	return h.ID().String()
}

func TestTorModeRefusals(t *testing.T) {
	ctx := testCtx(t)
	e := newEnv(t)
	a := e.torHost("a")
	c := testIdentity("c").PeerID()
	decoy, closeDecoy := trap(t)
	defer closeDecoy()

	t.Run("ip4 only", func(t *testing.T) {
		err := a.Connect(ctx, peer.AddrInfo{ID: c, Addrs: []ma.Multiaddr{decoy}})
		if !errors.Is(err, ErrPolicy) {
			t.Fatalf("connect = %v, want ErrPolicy", err)
		}
	})
	t.Run("gater", func(t *testing.T) {
		if a.gater.InterceptAddrDial(c, decoy) {
			t.Fatal("gater allowed /ip4 in tor mode")
		}
		if !a.gater.InterceptAddrDial(c, onionAddr(t, "c")) {
			t.Fatal("gater refused /onion3 in tor mode")
		}
	})
	t.Run("no tcp transport", func(t *testing.T) {
		for _, tr := range []string{"/ip4/127.0.0.1/tcp/1", "/ip6/::1/tcp/1"} {
			if canDial(a, ma.StringCast(tr)) {
				t.Errorf("tor host has a transport for %s", tr)
			}
		}
	})
	t.Run("dns", func(t *testing.T) {
		dns := ma.StringCast("/dns4/leak-canary.invalid/tcp/7420")
		err := a.Connect(ctx, peer.AddrInfo{ID: c, Addrs: []ma.Multiaddr{dns}})
		if !errors.Is(err, ErrPolicy) {
			t.Fatalf("connect = %v, want ErrPolicy", err)
		}
		if n := a.resolver.lookups.Load(); n != 0 {
			t.Fatalf("Connect passed a /dns4 address to the resolver (%d calls)", n)
		}
		// Second line: the address reaches the peerstore some other way
		// (a DHT record) and the swarm dials on its own. The swarm resolves
		// before the gater runs; the host's resolver refuses.
		a.Host().Peerstore().AddAddr(c, dns, time.Minute)
		_, err = a.Host().Network().DialPeer(ctx, c)
		if err == nil {
			t.Fatal("swarm dialed a /dns4 address")
		}
		if n := a.resolver.lookups.Load(); n == 0 {
			t.Fatal("the swarm did not go through the refusing resolver")
		}
		for _, d := range a.Dials() {
			if Classify(d.Addr) == ClassDNS && d.Allowed {
				t.Fatalf("gater allowed %s", d.Addr)
			}
		}
	})
	for _, r := range e.srv.Requests() {
		t.Errorf("refused connects reached the proxy: %+v", r)
	}
}

// canDial reports whether h's swarm has a transport for m.
func canDial(h *Host, m ma.Multiaddr) bool {
	return h.Host().Network().(*swarm.Swarm).TransportForDialing(m) != nil
}

// captureLog returns a logger writing text to buf.
func captureLog() (*slog.Logger, *syncBuffer) {
	var buf syncBuffer
	return slog.New(slog.NewTextHandler(&buf, nil)), &buf
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestHybridFallback(t *testing.T) {
	tests := []struct {
		name  string
		onion func(srv *sockstest.Server, host string)
	}{
		{"descriptor not found", func(srv *sockstest.Server, host string) { srv.Reply(host, 0xF0) }},
		{"stalled circuit", func(srv *sockstest.Server, host string) { srv.Stall(host) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			e := newEnv(t)
			logger, buf := captureLog()
			const hybridTimeout = 500 * time.Millisecond
			a := newHost(t, Config{Identity: testIdentity("a"), Mode: ModeHybrid, OnionDialer: e.dialer(),
				ListenTCP: []string{"/ip4/127.0.0.1/tcp/0"}, HybridTimeout: hybridTimeout, Logger: logger})
			bcfg := Config{Identity: testIdentity("b"), Mode: ModeHybrid, ListenTCP: []string{"/ip4/127.0.0.1/tcp/0"}}
			e.withOnion(&bcfg)
			b := newHost(t, bcfg)
			tt.onion(e.srv, testIdentity("b").OnionAddress())

			start := time.Now()
			if err := a.Connect(ctx, info(b)); err != nil {
				t.Fatalf("connect: %v", err)
			}
			if _, err := a.Ping(ctx, b.ID()); err != nil {
				t.Fatal(err)
			}
			t.Logf("fell back after %v", time.Since(start))
			dials := a.Dials()
			if len(dials) < 2 || Classify(dials[0].Addr) != ClassOnion {
				t.Fatalf("dials = %+v, want the onion address first", dials)
			}
			if reqs := e.srv.Requests(); len(reqs) == 0 {
				t.Fatal("the onion address was never tried")
			}
			for _, c := range a.Host().Network().ConnsToPeer(b.ID()) {
				if Classify(c.RemoteMultiaddr()) != ClassDirect {
					t.Errorf("connection over %s, want direct", c.RemoteMultiaddr())
				}
			}
			out := buf.String()
			if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "now sees this agent's IP address") {
				t.Fatalf("no fallback warning in log:\n%s", out)
			}
		})
	}
}

func TestHybridPrefersOnion(t *testing.T) {
	ctx := testCtx(t)
	e := newEnv(t)
	logger, buf := captureLog()
	a := newHost(t, Config{Identity: testIdentity("a"), Mode: ModeHybrid, OnionDialer: e.dialer(), Logger: logger})
	bcfg := Config{Identity: testIdentity("b"), Mode: ModeHybrid, ListenTCP: []string{"/ip4/127.0.0.1/tcp/0"}}
	e.withOnion(&bcfg)
	b := newHost(t, bcfg)
	if err := a.Connect(ctx, info(b)); err != nil {
		t.Fatal(err)
	}
	for _, c := range a.Host().Network().ConnsToPeer(b.ID()) {
		if Classify(c.RemoteMultiaddr()) != ClassOnion {
			t.Errorf("connection over %s, want onion", c.RemoteMultiaddr())
		}
	}
	for _, d := range a.Dials() {
		if Classify(d.Addr) != ClassOnion && d.Allowed {
			t.Errorf("direct address dialed although onion worked: %s", d.Addr)
		}
	}
	if strings.Contains(buf.String(), "WARN") {
		t.Errorf("unexpected warning: %s", buf.String())
	}
}

func TestPeerModes(t *testing.T) {
	ctx := testCtx(t)
	e := newEnv(t)
	bcfg := Config{Identity: testIdentity("b"), Mode: ModeHybrid, ListenTCP: []string{"/ip4/127.0.0.1/tcp/0"}}
	e.withOnion(&bcfg)
	b := newHost(t, bcfg)
	bID := b.ID()

	tests := []struct {
		name    string
		global  Mode
		peer    Mode
		want    AddrClass // class of the connection, or -1 for ErrPolicy
		proxied bool      // whether the fake tor saw a request
	}{
		{"direct host, tor peer", ModeDirect, ModeTor, ClassOnion, true},
		{"hybrid host, direct peer", ModeHybrid, ModeDirect, ClassDirect, false},
		{"hybrid host, tor peer", ModeHybrid, ModeTor, ClassOnion, true},
		{"tor host, direct peer", ModeTor, ModeDirect, -1, false},
		{"direct host, no override", ModeDirect, "", ClassDirect, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(e.srv.Requests())
			cfg := Config{Identity: testIdentity("a"), Mode: tt.global, OnionDialer: e.dialer()}
			if tt.peer != "" {
				cfg.PeerModes = map[peer.ID]Mode{bID: tt.peer}
			}
			a := newHost(t, cfg)
			defer a.Close()
			err := a.Connect(ctx, info(b))
			if tt.want == -1 {
				if !errors.Is(err, ErrPolicy) {
					t.Fatalf("connect = %v, want ErrPolicy", err)
				}
				if a.gater.InterceptPeerDial(bID) {
					t.Fatal("gater allows dialing a direct peer from a tor host")
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range a.Host().Network().ConnsToPeer(bID) {
					if got := Classify(c.RemoteMultiaddr()); got != tt.want {
						t.Errorf("connection over %s, want class %d", c.RemoteMultiaddr(), tt.want)
					}
				}
			}
			if got := len(e.srv.Requests()) > before; got != tt.proxied {
				t.Errorf("proxy used = %v, want %v", got, tt.proxied)
			}
			// b remembers a's connection; drop it so the next case dials anew.
			b.Host().Network().ClosePeer(a.ID())
		})
	}
}

const echoProto = "/mmogit/test/echo/1"

// TestTorLeak runs a tor-only exchange while recording every outgoing
// connection: the only socket ever opened is to the SOCKS proxy, and the
// only destinations it is asked for are .onion names.
func TestTorLeak(t *testing.T) {
	ctx := testCtx(t)
	e := newEnv(t)
	a, b := e.torHost("a"), e.torHost("b")
	b.Host().SetStreamHandler(echoProto, func(s network.Stream) {
		defer s.Close()
		io.Copy(s, s)
	})

	decoy, closeDecoy := trap(t)
	defer closeDecoy()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: []ma.Multiaddr{decoy, onionAddr(t, "b")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Ping(ctx, b.ID()); err != nil {
		t.Fatal(err)
	}
	s, err := a.Host().NewStream(ctx, b.ID(), echoProto)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("memories travel by onion")
	if _, err := s.Write(msg); err != nil {
		t.Fatal(err)
	}
	s.CloseWrite()
	got, err := io.ReadAll(s)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo = %q, %v", got, err)
	}
	// b pings back over the same connection.
	if _, err := b.Ping(ctx, a.ID()); err != nil {
		t.Fatal(err)
	}

	e.log.mu.Lock()
	defer e.log.mu.Unlock()
	if len(e.log.proxy) == 0 {
		t.Fatal("no dial recorded")
	}
	for i, p := range e.log.proxy {
		if p != e.srv.Addr() {
			t.Errorf("dial %d opened %s, not the SOCKS proxy", i, p)
		}
		host, _, _ := net.SplitHostPort(e.log.addrs[i])
		if !onion.Valid(host) {
			t.Errorf("dial %d asked for %s, not an onion", i, e.log.addrs[i])
		}
	}
	for _, r := range e.srv.Requests() {
		if r.AddrType != 0x03 || !strings.HasSuffix(r.Host, ".onion") {
			t.Errorf("proxy request %+v is not an onion name", r)
		}
	}
	for _, h := range []*Host{a, b} {
		for _, d := range h.Dials() {
			if Classify(d.Addr) != ClassOnion {
				t.Errorf("%s's gater saw %s", nameOf(h), d.Addr)
			}
		}
		if canDial(h, decoy) {
			t.Errorf("%s can dial TCP", nameOf(h))
		}
	}
}

func TestNewRejects(t *testing.T) {
	id := testIdentity("a")
	other := testIdentity("b")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dialer := func(peer.ID) oniontransport.ContextDialer { return &socks.Dialer{ProxyAddr: "127.0.0.1:1"} }
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no identity", Config{Mode: ModeDirect}},
		{"bad mode", Config{Identity: id, Mode: "i2p"}},
		{"tor without dialer", Config{Identity: id, Mode: ModeTor}},
		{"tor with tcp", Config{Identity: id, Mode: ModeTor, OnionDialer: dialer, ListenTCP: []string{"/ip4/127.0.0.1/tcp/0"}}},
		{"listen dns", Config{Identity: id, Mode: ModeDirect, ListenTCP: []string{"/dns4/localhost/tcp/0"}}},
		{"someone else's onion", Config{Identity: id, Mode: ModeTor, OnionDialer: dialer,
			Onion: &OnionListener{Listener: ln, Address: other.OnionAddress(), Port: testPort}}},
		{"bad peer mode", Config{Identity: id, Mode: ModeDirect, PeerModes: map[peer.ID]Mode{other.PeerID(): "x"}}},
		{"tor peer without dialer", Config{Identity: id, Mode: ModeDirect, PeerModes: map[peer.ID]Mode{other.PeerID(): ModeTor}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := New(context.Background(), tt.cfg)
			if err == nil {
				h.Close()
				t.Fatal("New succeeded")
			}
		})
	}
}

func TestConnectOnion(t *testing.T) {
	ctx := testCtx(t)
	e := newEnv(t)
	a, b := e.torHost("a"), e.torHost("b")
	p, err := a.ConnectOnion(ctx, strings.ToUpper(testIdentity("b").OnionAddress()), testPort)
	if err != nil {
		t.Fatal(err)
	}
	if p != b.ID() {
		t.Fatalf("peer = %s, want %s", p, b.ID())
	}
	bad := []byte(onion.Normalize(testIdentity("b").OnionAddress()))
	bad[0] ^= 1
	if _, err := a.ConnectOnion(ctx, string(bad), testPort); !errors.Is(err, oniontransport.ErrBadAddress) {
		t.Fatalf("ConnectOnion(bad checksum) = %v, want ErrBadAddress", err)
	}
}

func BenchmarkDirectConnectPing(b *testing.B) {
	ctx := context.Background()
	srv := directHost(b, "b")
	for b.Loop() {
		cli, err := New(ctx, Config{Identity: testIdentity("a"), Mode: ModeDirect})
		if err != nil {
			b.Fatal(err)
		}
		if err := cli.Connect(ctx, info(srv)); err != nil {
			b.Fatal(err)
		}
		if _, err := cli.Ping(ctx, srv.ID()); err != nil {
			b.Fatal(err)
		}
		cli.Close()
	}
}
