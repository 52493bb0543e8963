package oniontransport_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/onion"
	"github.com/mmogit/mmogit/internal/oniontransport"
	"github.com/mmogit/mmogit/internal/socks"
	"github.com/mmogit/mmogit/internal/socks/sockstest"
)

// Tor's own test vector (rend-spec-v3 / docs/spec-notes.md).
const vectorOnion = "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid"

func testIdentity(name string) *identity.Identity {
	s := sha256.Sum256([]byte("oniontransport test " + name))
	return identity.FromSeed(s[:])
}

// corrupt changes one character of a valid address so that its checksum no
// longer matches, keeping it valid base32 of the right length.
func corrupt(addr string) string {
	b := []byte(addr)
	if b[3] == 'a' {
		b[3] = 'b'
	} else {
		b[3] = 'a'
	}
	return string(b)
}

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		host    string
		port    int
		wantErr error
	}{
		{in: "/onion3/" + vectorOnion + ":80", host: vectorOnion, port: 80},
		{in: "/onion3/" + vectorOnion + ":7420/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA", host: vectorOnion, port: 7420},
		{in: "/onion3/" + corrupt(vectorOnion) + ":80", wantErr: onion.ErrChecksum},
		{in: "/onion3/" + vectorOnion + ":80/tcp/1", wantErr: oniontransport.ErrBadAddress},
		{in: "/ip4/127.0.0.1/tcp/80", wantErr: oniontransport.ErrBadAddress},
		{in: "/onion/timaq4ygg2iegci7:1234", wantErr: oniontransport.ErrBadAddress},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			m, err := ma.NewMultiaddr(tt.in)
			if err != nil {
				t.Fatalf("multiaddr: %v", err)
			}
			a, err := oniontransport.Parse(m)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !errors.Is(err, oniontransport.ErrBadAddress) {
					t.Fatalf("Parse = %v, want %v and ErrBadAddress", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.Host != tt.host || a.Port != tt.port || onion.Encode(a.Public) != tt.host {
				t.Fatalf("Parse = %+v", a)
			}
			if got := a.Hostport(); got != tt.host+".onion:"+strconv.Itoa(tt.port) {
				t.Fatalf("Hostport = %q", got)
			}
		})
	}
}

// node is a libp2p host whose only transport is the onion transport,
// listening on a local socket that the fake SOCKS server routes its onion
// name to.
type node struct {
	id     *identity.Identity
	host   host.Host
	addr   ma.Multiaddr // its /onion3 address
	onion  string
	target string // the local socket tor (here: the fake proxy) forwards to
}

const virtPort = 7420

func newNode(t *testing.T, name string, proxy string) *node {
	t.Helper()
	id := testIdentity(name)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &socks.Dialer{ProxyAddr: proxy, Timeout: 10 * time.Second}
	dialer := func(p peer.ID) oniontransport.ContextDialer { return d.ForPeer(p.String()) }
	addr, err := oniontransport.Multiaddr(id.OnionAddress(), virtPort)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(
		libp2p.Identity(id.Libp2pKey()),
		libp2p.NoTransports,
		libp2p.Transport(oniontransport.New,
			oniontransport.WithDialer(dialer),
			oniontransport.WithListener(ln, id.OnionAddress(), virtPort),
			oniontransport.WithDialTimeout(10*time.Second)),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ListenAddrs(addr),
		libp2p.DisableRelay(),
		libp2p.DisableIdentifyAddressDiscovery(),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return &node{id: id, host: h, addr: addr, onion: onion.Normalize(id.OnionAddress()), target: ln.Addr().String()}
}

func pingOnce(ctx context.Context, t *testing.T, h host.Host, p peer.ID) time.Duration {
	t.Helper()
	res := <-ping.Ping(ctx, h, p)
	if res.Error != nil {
		t.Fatalf("ping: %v", res.Error)
	}
	return res.RTT
}

func TestConnectThroughSocks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv := sockstest.NewServer(t)
	a := newNode(t, "a", srv.Addr())
	b := newNode(t, "b", srv.Addr())
	srv.Route(b.onion+".onion", b.target)

	if got := b.host.Addrs(); len(got) != 1 || !got[0].Equal(b.addr) {
		t.Fatalf("b.Addrs() = %v, want [%s]", got, b.addr)
	}
	if err := a.host.Connect(ctx, peer.AddrInfo{ID: b.host.ID(), Addrs: []ma.Multiaddr{b.addr}}); err != nil {
		t.Fatalf("connect: %v", err)
	}
	pingOnce(ctx, t, a.host, b.host.ID())
	pingOnce(ctx, t, b.host, a.host.ID()) // reuses the connection backwards

	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("SOCKS requests = %+v, want exactly one", reqs)
	}
	r := reqs[0]
	if r.Host != b.onion+".onion" || r.Port != virtPort || r.AddrType != 0x03 {
		t.Errorf("request = %+v, want domain %s.onion:%d", r, b.onion, virtPort)
	}
	if r.Username == "" {
		t.Errorf("request has no isolation credentials")
	}
	for _, c := range a.host.Network().ConnsToPeer(b.host.ID()) {
		if !c.RemoteMultiaddr().Equal(b.addr) {
			t.Errorf("a's conn remote = %s, want %s", c.RemoteMultiaddr(), b.addr)
		}
	}
	for _, c := range b.host.Network().ConnsToPeer(a.host.ID()) {
		for _, m := range []ma.Multiaddr{c.LocalMultiaddr(), c.RemoteMultiaddr()} {
			if !oniontransport.IsOnion(m) {
				t.Errorf("b's inbound conn carries non-onion multiaddr %s", m)
			}
		}
	}
}

func TestDialRefusals(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv := sockstest.NewServer(t)
	a := newNode(t, "a", srv.Addr())
	b := newNode(t, "b", srv.Addr())
	c := testIdentity("c")
	srv.Route(b.onion+".onion", b.target)

	bad := ma.StringCast("/onion3/" + corrupt(b.onion) + ":7420")
	cAddr, _ := oniontransport.Multiaddr(c.OnionAddress(), virtPort)
	tests := []struct {
		name string
		addr ma.Multiaddr
		want error
	}{
		{"bad checksum", bad, onion.ErrChecksum},
		{"another peer's address", cAddr, oniontransport.ErrPeerMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := a.host.Connect(ctx, peer.AddrInfo{ID: b.host.ID(), Addrs: []ma.Multiaddr{tt.addr}})
			if !errors.Is(err, tt.want) {
				t.Fatalf("connect = %v, want %v", err, tt.want)
			}
			var de *swarm.DialError
			if !errors.As(err, &de) {
				t.Fatalf("connect error %T is not a *swarm.DialError", err)
			}
			a.host.Peerstore().ClearAddrs(b.host.ID())
		})
	}
	if reqs := srv.Requests(); len(reqs) != 0 {
		t.Fatalf("refused dials reached the proxy: %+v", reqs)
	}
}

func TestTypedErrorThroughConnect(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv := sockstest.NewServer(t)
	a := newNode(t, "a", srv.Addr())
	b := newNode(t, "b", srv.Addr())
	srv.Reply(b.onion+".onion", 0xF0) // tor: descriptor not found

	err := a.host.Connect(ctx, peer.AddrInfo{ID: b.host.ID(), Addrs: []ma.Multiaddr{b.addr}})
	if !errors.Is(err, socks.ErrOnionServiceUnreachable) {
		t.Fatalf("connect = %v, want socks.ErrOnionServiceUnreachable", err)
	}
	var se *socks.Error
	if !errors.As(err, &se) {
		t.Fatalf("errors.As(*socks.Error) failed on %v", err)
	}
	var re *socks.ReplyError
	if !errors.As(err, &re) || re.Code != 0xF0 {
		t.Fatalf("reply error = %v, want code 0xF0", re)
	}
	if !bytes.Contains([]byte(err.Error()), []byte("oniontransport: dial")) {
		t.Errorf("error text lacks transport context: %v", err)
	}
}
