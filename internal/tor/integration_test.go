package tor

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/onion"
	"github.com/mmogit/mmogit/internal/platform"
	"github.com/mmogit/mmogit/internal/socks"
	"github.com/mmogit/mmogit/internal/testnet"
)

// Integration tests on the real private Tor network (internal/testnet):
// what the Tor layer promises, end to end, with real tor processes.

// identitySeed is RFC 8032's test 1 seed. Its onion address is tor's own
// test vector (docs/spec-notes.md), so a wrong key derivation cannot go unnoticed.
const (
	identitySeed    = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
	identityAddress = "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid.onion"
)

// TestPrivateNetwork runs the Tor layer's scenarios as one script on the
// shared network, because each joined tor costs a bootstrap: a host tor
// publishes services, a second managed tor is the client for client
// authorization (so the network's own client keeps no credentials) and is
// then killed.
func TestPrivateNetwork(t *testing.T) {
	if testing.Short() {
		t.Skip("private Tor network: slow (~30 s)")
	}
	nw := testnet.Shared(t)
	ctx := testCtx(t, 4*time.Minute)
	netClient := networkClient(t, ctx, nw)

	// Both tors bootstrap at the same time; that is most of the cost.
	host, client := joinBoth(t, ctx, nw)
	t.Logf("host bootstrapped %v after tor.Start, client %v", host.bootstrap.Round(time.Millisecond), client.bootstrap.Round(time.Millisecond))
	echoAddr := echoListener(t).Addr().String()

	var open *Service
	t.Run("identity key service reachable through another client", func(t *testing.T) {
		seed, _ := hex.DecodeString(identitySeed)
		key := ed25519.NewKeyFromSeed(seed)
		pub := key.Public().(ed25519.PublicKey)
		published := time.Now()
		s, err := host.Publish(ctx, ServiceConfig{Key: key, VirtualPort: 80, Target: echoAddr})
		if err != nil {
			t.Fatal(err)
		}
		if s.Hostname() != onion.Hostname(pub) || s.Hostname() != identityAddress {
			t.Fatalf("service %s; onion.Hostname(pub) = %s, vector %s", s.Hostname(), onion.Hostname(pub), identityAddress)
		}
		if err := s.WaitPublished(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("published %v after tor.Start (%v after Publish)",
			time.Since(host.start).Round(time.Millisecond), time.Since(published).Round(time.Millisecond))

		d := (&socks.Dialer{ProxyAddr: nw.SocksAddr(), Timeout: 30 * time.Second}).ForPeer(s.ID)
		c, err := dialOnion(t, ctx, d, s.Hostname()+":80", newnymOf(netClient))
		if err != nil {
			t.Fatalf("dial through the network's client: %v", err)
		}
		defer c.Close()
		if err := echo(c, "hello through another tor"); err != nil {
			t.Fatal(err)
		}
		t.Logf("reachable %v after tor.Start", time.Since(host.start).Round(time.Millisecond))
		open = s
	})

	t.Run("typed SOCKS errors", func(t *testing.T) {
		testSocksErrors(t, ctx, map[string]string{"network client": nw.SocksAddr(), "managed tor": client.SocksAddr()})
	})

	t.Run("client authorization", func(t *testing.T) {
		testClientAuth(t, ctx, host, client, echoAddr)
	})

	t.Run("SIGKILL mid-session", func(t *testing.T) {
		if open == nil {
			t.Fatal("needs the service of the first subtest")
		}
		testKill(t, ctx, client, open)
	})

	t.Run("no tor process survives Stop", func(t *testing.T) {
		for _, j := range []*joined{host, client} {
			j.stopAndCheck(t)
		}
	})
}

// joinBoth starts two managed tors on nw concurrently.
func joinBoth(t *testing.T, ctx context.Context, nw *testnet.Network) (a, b *joined) {
	t.Helper()
	type res struct {
		j   *joined
		err error
	}
	ch := make(chan res, 2)
	for range 2 {
		go func() {
			j, err := join(ctx, t.TempDir(), nw.ClientTorrc(), Config{})
			ch <- res{j, err}
		}()
	}
	var js []*joined
	var errs []error
	for range 2 {
		r := <-ch
		if r.j != nil {
			t.Cleanup(func() { r.j.stopAndCheck(t) })
			js = append(js, r.j)
		}
		errs = append(errs, r.err)
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("join the private network: %v", err)
	}
	return js[0], js[1]
}

// testSocksErrors dials addresses tor must refuse through ExtendedErrors
// SOCKS ports: the network's client and a managed tor (whose torrc must
// turn ExtendedErrors on for the typed errors to work).
func testSocksErrors(t *testing.T, ctx context.Context, proxies map[string]string) {
	_, unpublished, _ := ed25519.GenerateKey(rand.Reader)
	pub := unpublished.Public().(ed25519.PublicKey)
	badSum := corruptChecksum(pub)
	if _, err := onion.Parse(badSum); !errors.Is(err, onion.ErrChecksum) {
		t.Fatalf("corrupted address %s: onion.Parse says %v, want a checksum error", badSum, err)
	}
	tests := []struct {
		name string
		addr string
		kind error
		code byte
	}{
		{"unpublished address: descriptor not found", onion.Hostname(pub), socks.ErrOnionServiceUnreachable, socks.ReplyOnionDescNotFound},
		{"corrupted checksum: bad address", badSum, socks.ErrBadAddress, socks.ReplyOnionBadAddress},
	}
	for proxyName, proxy := range proxies {
		for _, tt := range tests {
			t.Run(proxyName+"/"+tt.name, func(t *testing.T) {
				d := (&socks.Dialer{ProxyAddr: proxy, Timeout: 30 * time.Second}).ForPeer(tt.addr)
				start := time.Now()
				c, err := d.DialContext(ctx, "tcp", tt.addr+":80")
				if err == nil {
					c.Close()
				}
				wantReply(t, err, tt.kind, tt.code)
				t.Logf("%v after %v", err, time.Since(start).Round(time.Millisecond))
			})
		}
	}
}

// corruptChecksum returns pub's v3 address with both checksum bytes
// inverted: right length, version and alphabet, wrong checksum.
func corruptChecksum(pub ed25519.PublicKey) string {
	raw, _ := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(onion.Encode(pub)))
	raw[32] ^= 0xff
	raw[33] ^= 0xff
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(raw)) + onion.Suffix
}

// testClientAuth publishes a service restricted to one x25519 key on host
// and dials it from client: refused with F4 without the key, reachable
// after ONION_CLIENT_AUTH_ADD.
func testClientAuth(t *testing.T, ctx context.Context, host, client *joined, echoAddr string) {
	authKey, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	s, err := host.Publish(ctx, ServiceConfig{Key: key, VirtualPort: 80, Target: echoAddr, ClientAuth: []*ecdh.PublicKey{authKey.PublicKey()}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Remove(ctx)
	if err := s.WaitPublished(ctx); err != nil {
		t.Fatal(err)
	}
	d := (&socks.Dialer{ProxyAddr: client.SocksAddr(), Timeout: 30 * time.Second}).ForPeer(s.ID)
	// Retry transient errors (F0 right after the upload); F4 is final.
	c, err := dialOnion(t, ctx, d, s.Hostname()+":80", newnymOf(client.Daemon))
	if err == nil {
		c.Close()
	}
	wantReply(t, err, socks.ErrOnionAuth, socks.ReplyOnionAuthMissing)
	if socks.Retryable(err) {
		t.Errorf("missing client authorization is retryable: %v", err)
	}

	priv := base64.StdEncoding.EncodeToString(authKey.Bytes())
	if err := client.ControlConn().OnionClientAuthAdd(ctx, s.ID, priv); err != nil {
		t.Fatal(err)
	}
	c, err = dialOnion(t, ctx, d, s.Hostname()+":80", newnymOf(client.Daemon))
	if err != nil {
		t.Fatalf("dial after ONION_CLIENT_AUTH_ADD: %v", err)
	}
	defer c.Close()
	if err := echo(c, "authorized"); err != nil {
		t.Fatal(err)
	}
}

// testKill opens a stream through client to s, SIGKILLs client's tor and
// checks what a caller sees: the open stream ends, Done closes with an
// ErrExited error, and a new dial says tor is not running.
func testKill(t *testing.T, ctx context.Context, client *joined, s *Service) {
	d := (&socks.Dialer{ProxyAddr: client.SocksAddr(), Timeout: 30 * time.Second}).ForPeer(s.ID)
	c, err := dialOnion(t, ctx, d, s.Hostname()+":80", newnymOf(client.Daemon))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := echo(c, "before the kill"); err != nil {
		t.Fatal(err)
	}

	pid := client.Pid()
	if err := platform.Kill(pid); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	select {
	case <-client.Done():
		t.Logf("Done closed %v after SIGKILL: %v", time.Since(killed).Round(time.Millisecond), client.Err())
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed 5 s after SIGKILL")
	}
	if !errors.Is(client.Err(), ErrExited) {
		t.Errorf("Err() = %v, want ErrExited", client.Err())
	}
	if alive := awaitGone(client.procs, 5*time.Second); len(alive) > 0 {
		t.Errorf("alive after SIGKILL: %v", alive)
	}

	// The stream that was open dies with tor.
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("after")); err == nil {
		_, err = c.Read(make([]byte, 16))
		var ne net.Error
		if err == nil || errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("open stream still usable after SIGKILL (read: %v)", err)
		}
	}

	_, err = d.DialContext(ctx, "tcp", s.Hostname()+":80")
	if !errors.Is(err, socks.ErrDaemonNotRunning) || socks.Retryable(err) {
		t.Fatalf("dial after SIGKILL: %v; want ErrDaemonNotRunning, not retryable", err)
	}
	t.Logf("dial after SIGKILL: %v", err)
}

// TestBridge joins a private network that has an obfs4 bridge with a
// managed tor that may only use that bridge, and reaches an onion service
// hosted elsewhere in the network through it. The network is this test's
// own (testnet.Shared has no bridge) and is closed and checked for
// surviving processes at the end.
func TestBridge(t *testing.T) {
	if testing.Short() {
		t.Skip("private Tor network with an obfs4 bridge: slow (~25 s)")
	}
	ctx := testCtx(t, 4*time.Minute)
	t0 := time.Now()
	nw, err := testnet.Start(ctx, testnet.Options{Dir: t.TempDir(), Bridge: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("bridge network up in %v", time.Since(t0).Round(time.Millisecond))
	var netProcs []proc
	for _, pid := range nw.Info().PIDs {
		netProcs = append(netProcs, processTree(pid)...)
	}
	closed := false
	closeNet := func() {
		if closed {
			return
		}
		closed = true
		nw.Close()
		if alive := awaitGone(netProcs, 10*time.Second); len(alive) > 0 {
			t.Errorf("network processes alive after Close: %v", alive)
		}
	}
	t.Cleanup(closeNet)
	if !slices.ContainsFunc(netProcs, func(p proc) bool { return strings.Contains(p.comm, "obfs4") || strings.Contains(p.comm, "lyrebird") }) {
		t.Errorf("no obfs4proxy among the network's processes %v", netProcs)
	}

	// The service lives on the network's own client, reached directly.
	netClient := networkClient(t, ctx, nw)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	s, err := netClient.Publish(ctx, ServiceConfig{Key: key, VirtualPort: 80, Target: echoListener(t).Addr().String()})
	if err != nil {
		t.Fatal(err)
	}

	// The bridge client: the network's bridge-client lines, except the
	// bridge options themselves, which Config must produce.
	var torrc []string
	for _, l := range nw.BridgeClientTorrc() {
		if !strings.HasPrefix(l, "UseBridges ") && !strings.HasPrefix(l, "ClientTransportPlugin ") && !strings.HasPrefix(l, "Bridge ") {
			torrc = append(torrc, l)
		}
	}
	if slices.Contains(torrc, "UseEntryGuards 0") {
		t.Errorf("bridge client torrc turns entry guards off: %q", torrc)
	}
	b := startJoined(t, ctx, torrc, Config{UseBridges: true, Bridges: []string{nw.BridgeLine()}})
	t.Logf("bridge client bootstrapped %v after tor.Start", b.bootstrap.Round(time.Millisecond))
	if !slices.ContainsFunc(b.procs, func(p proc) bool { return p.pid != b.Pid() }) {
		t.Errorf("bridge client runs no pluggable transport: %v", b.procs)
	}

	if err := s.WaitPublished(ctx); err != nil {
		t.Fatal(err)
	}
	d := (&socks.Dialer{ProxyAddr: b.SocksAddr(), Timeout: 30 * time.Second}).ForPeer(s.ID)
	c, err := dialOnion(t, ctx, d, s.Hostname()+":80", newnymOf(b.Daemon))
	if err != nil {
		t.Fatalf("dial through the bridge: %v", err)
	}
	defer c.Close()
	if err := echo(c, "through the obfs4 bridge"); err != nil {
		t.Fatal(err)
	}
	t.Logf("onion service reachable through the bridge %v after tor.Start", time.Since(b.start).Round(time.Millisecond))

	// Every circuit the client built starts at the bridge.
	bridgeFP := strings.Fields(nw.BridgeLine())[2]
	hops, err := firstHops(ctx, b.Daemon)
	if err != nil {
		t.Fatal(err)
	}
	if len(hops) == 0 {
		t.Fatal("no built circuits")
	}
	t.Logf("%d built circuits, all must start at the bridge %s", len(hops), bridgeFP)
	for _, h := range hops {
		if !strings.EqualFold(h, bridgeFP) {
			t.Errorf("a circuit starts at %s, not at the bridge %s", h, bridgeFP)
		}
	}

	c.Close()
	b.stopAndCheck(t)
	closeNet()
}

// firstHops returns the fingerprint of the first relay of each BUILT
// circuit (GETINFO circuit-status lines: "ID BUILT $FP~nick,... PURPOSE=…").
func firstHops(ctx context.Context, d *Daemon) ([]string, error) {
	m, err := d.ControlConn().GetInfo(ctx, "circuit-status")
	if err != nil {
		return nil, err
	}
	var hops []string
	for _, line := range strings.Split(m["circuit-status"], "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[1] != "BUILT" {
			continue
		}
		first, _, _ := strings.Cut(f[2], ",")
		first = strings.TrimPrefix(first, "$")
		if i := strings.IndexAny(first, "~="); i >= 0 {
			first = first[:i]
		}
		hops = append(hops, first)
	}
	return hops, nil
}
