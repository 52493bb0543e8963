package discovery

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	dhtpb "github.com/libp2p/go-libp2p-kad-dht/pb"
	record "github.com/libp2p/go-libp2p-record"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/mmogit/mmogit/internal/identity"
)

// fakeClock is shared by every node of a test network, so advancing it
// expires advertisements everywhere at once.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type node struct {
	id *identity.Identity
	h  host.Host
	d  *Discovery
}

func testIdentity(name string) *identity.Identity {
	seed := sha256.Sum256([]byte("mmogit discovery test " + name))
	return identity.FromSeed(seed[:])
}

// newHost is a plain go-libp2p host on TCP loopback, as the agent's host
// would be in direct mode. The null resource manager keeps the default
// per-IP connection rate limit (all hosts share 127.0.0.1) out of the test.
func newHost(t testing.TB, id *identity.Identity) host.Host {
	t.Helper()
	h, err := libp2p.New(
		libp2p.Identity(id.Libp2pKey()),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ResourceManager(&network.NullResourceManager{}),
		libp2p.DisableRelay(),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func newNode(t testing.TB, name string, opts Options) *node {
	t.Helper()
	id := testIdentity(name)
	h := newHost(t, id)
	d, err := New(h, id, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return &node{id: id, h: h, d: d}
}

func info(h host.Host) peer.AddrInfo { return peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()} }

// newNet starts n nodes; node 0 is the bootstrap peer of the others.
func newNet(t testing.TB, n int, opts Options) []*node {
	t.Helper()
	nodes := make([]*node, n)
	for i := range nodes {
		nodes[i] = newNode(t, fmt.Sprint("node", i), opts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, nd := range nodes[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = nd.d.Bootstrap(ctx, []peer.AddrInfo{info(nodes[0].h)})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("bootstrap node %d: %v", i+1, err)
		}
	}
	// Early joiners refreshed before the others arrived; refresh again so
	// every routing table holds the whole network.
	for _, nd := range nodes {
		<-nd.d.DHT().RefreshRoutingTable()
	}
	return nodes
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func pubsOf(ads []Advertisement) map[string]bool {
	m := map[string]bool{}
	for _, ad := range ads {
		m[fmt.Sprintf("%x", []byte(ad.PubKey))] = true
	}
	return m
}

// rawGet asks node to for the record it stores under key, from node from
// (or from its own store when from == to).
func rawGet(ctx context.Context, from, to *node, key string) ([]byte, error) {
	if from == to {
		val, err := to.d.DHT().GetValue(ctx, key, routing.Offline)
		if err == routing.ErrNotFound {
			return nil, nil
		}
		return val, err
	}
	pm, err := dhtpb.NewProtocolMessenger(from.d.DHT().MessageSender())
	if err != nil {
		return nil, err
	}
	rec, _, err := pm.GetValue(ctx, to.h.ID(), key)
	if err != nil || rec == nil {
		return nil, err
	}
	return rec.GetValue(), nil
}

// rawPut sends a PUT_VALUE for key straight to node to, bypassing the
// sender's own validation, the way a malicious peer would; from == to uses
// the node's local PutValue entry point instead.
func rawPut(ctx context.Context, from, to *node, key string, val []byte) error {
	if from == to {
		return to.d.DHT().PutValue(ctx, key, val)
	}
	pm, err := dhtpb.NewProtocolMessenger(from.d.DHT().MessageSender())
	if err != nil {
		return err
	}
	return pm.PutValue(ctx, to.h.ID(), &recpb.Record{Key: []byte(key), Value: val})
}

func encode(t testing.TB, ad Advertisement) []byte {
	t.Helper()
	b, err := json.Marshal(ad)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNetwork(t *testing.T) {
	clock := &fakeClock{t: time.Now().UTC().Truncate(time.Second)}
	const ttl = time.Hour
	nodes := newNet(t, 6, Options{Clock: clock.Now, TTL: ttl, QueryTimeout: 20 * time.Second})
	isChat := func(i int) bool { return i%2 == 1 }
	advertiseAll := func(t *testing.T, skip int) {
		var wg sync.WaitGroup
		errs := make([]error, len(nodes))
		for i, nd := range nodes {
			if i == skip {
				continue
			}
			svc := []string{"memory_sync"}
			if isChat(i) {
				svc = append(svc, "chat")
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = nd.d.Advertise(ctxT(t), svc, nil)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("node %d advertise: %v", i, err)
			}
		}
	}
	advertiseAll(t, -1)

	t.Run("every host finds every other", func(t *testing.T) {
		for i, nd := range nodes {
			for _, svc := range []string{"memory_sync", "chat"} {
				res, err := nd.d.Discover(ctxT(t), svc)
				if err != nil {
					t.Fatalf("node %d discover %s: %v", i, svc, err)
				}
				want := map[string]bool{}
				for j, other := range nodes {
					if j != i && (svc == "memory_sync" || isChat(j)) {
						want[other.id.PubHex()] = true
					}
				}
				got := pubsOf(res.Ads)
				if fmt.Sprint(got) != fmt.Sprint(want) || res.Dropped != 0 {
					t.Errorf("node %d discover %s: got %d ads %v (dropped %d %v), want %v", i, svc, len(got), got, res.Dropped, res.DropErrors, want)
				}
				for _, ad := range res.Ads {
					if ad.OnionAddress != testIdentityByPub(nodes, ad.PubKey).OnionAddress() {
						t.Errorf("ad for %x carries onion %s", []byte(ad.PubKey), ad.OnionAddress)
					}
				}
			}
		}
	})

	t.Run("forgeries rejected by every node", func(t *testing.T) {
		victim, mallory := nodes[1], testIdentity("mallory")
		now := clock.Now()
		legit := encode(t, mustCurrent(t, victim))
		onionOfVictim := mustSign(t, mallory, []string{"memory_sync"}, nil, 1, now, ttl)
		onionOfVictim.OnionAddress = victim.id.OnionAddress()
		onionOfVictim = resign(t, mallory, onionOfVictim)
		badSig := mustCurrent(t, victim)
		badSig.Services = []string{"chat", "evil", "memory_sync"}
		badSig.Seq++
		forgeries := []struct {
			name string
			key  string
			val  []byte
		}{
			{"wrong key for its onion address", RecordKey(mallory.Public), encode(t, onionOfVictim)},
			{"bad signature", RecordKey(victim.id.Public), encode(t, badSig)},
			{"expired", RecordKey(victim.id.Public), encode(t, mustSign(t, victim.id, []string{"memory_sync"}, nil, ^uint64(0), now.Add(-2*ttl), ttl))},
			{"from the future", RecordKey(victim.id.Public), encode(t, mustSign(t, victim.id, []string{"memory_sync"}, nil, ^uint64(0), now.Add(time.Hour), ttl))},
			{"another agent's valid ad under the victim's key", RecordKey(victim.id.Public), encode(t, mustSign(t, mallory, []string{"memory_sync"}, nil, ^uint64(0), now, ttl))},
			{"garbage", RecordKey(victim.id.Public), []byte(`{"pubkey":"`)},
		}
		from := nodes[0]
		for _, f := range forgeries {
			for j, to := range nodes {
				if err := rawPut(ctxT(t), from, to, f.key, f.val); err == nil {
					t.Errorf("%s: node %d accepted the forgery", f.name, j)
				}
				got, err := rawGet(ctxT(t), from, to, f.key)
				if err != nil {
					t.Fatalf("%s: get from node %d: %v", f.name, j, err)
				}
				if f.key == RecordKey(victim.id.Public) {
					if string(got) != string(legit) {
						t.Errorf("%s: node %d now serves %s", f.name, j, got)
					}
				} else if got != nil {
					t.Errorf("%s: node %d stores %s", f.name, j, got)
				}
			}
		}
	})

	t.Run("replayed older advertisement loses everywhere", func(t *testing.T) {
		victim := nodes[2]
		old := mustCurrent(t, victim)
		newer, err := victim.d.Advertise(ctxT(t), old.Services, nil)
		if err != nil {
			t.Fatal(err)
		}
		if newer.Seq <= old.Seq {
			t.Fatalf("seq did not increase: %d then %d", old.Seq, newer.Seq)
		}
		key := RecordKey(victim.id.Public)
		for j, to := range nodes {
			if err := rawPut(ctxT(t), nodes[0], to, key, encode(t, old)); err == nil {
				t.Errorf("node %d accepted the replay", j)
			}
			got, err := rawGet(ctxT(t), nodes[0], to, key)
			if err != nil {
				t.Fatalf("get from node %d: %v", j, err)
			}
			ad, err := Decode(got)
			if err != nil || ad.Seq != newer.Seq {
				t.Errorf("node %d serves seq %d (%v), want %d", j, ad.Seq, err, newer.Seq)
			}
			if j == 2 {
				continue
			}
			if ad, err := nodes[j].d.Lookup(ctxT(t), victim.id.Public); err != nil || ad.Seq != newer.Seq {
				t.Errorf("node %d Lookup = seq %d, %v; want %d", j, ad.Seq, err, newer.Seq)
			}
			// Having seen the newer one, the node calls the old one a
			// replay wherever it comes from.
			if _, err := nodes[j].d.verify(key, encode(t, old)); !errors.Is(err, ErrReplayed) {
				t.Errorf("node %d verifies the replay as %v, want ErrReplayed", j, err)
			}
			if err := (Validator{Clock: clock.Now}).Replaces(key, encode(t, old), got); !errors.Is(err, ErrReplayed) {
				t.Errorf("node %d: Replaces(replay, stored) = %v, want ErrReplayed", j, err)
			}
		}
	})

	t.Run("stopped agent disappears after expiry", func(t *testing.T) {
		gone := nodes[4]
		gone.d.StopAdvertising()
		clock.Advance(ttl + time.Second)
		advertiseAll(t, 4)
		for i, nd := range nodes {
			if i == 4 {
				continue
			}
			res, err := nd.d.Discover(ctxT(t), "memory_sync")
			if err != nil {
				t.Fatalf("node %d: %v", i, err)
			}
			got := pubsOf(res.Ads)
			if got[gone.id.PubHex()] || len(got) != 4 || res.Stale != 1 || res.Dropped != 0 {
				t.Errorf("node %d: %d ads (stopped one present: %v), stale %d, dropped %d %v", i, len(got), got[gone.id.PubHex()], res.Stale, res.Dropped, res.DropErrors)
			}
			if _, err := nd.d.Lookup(ctxT(t), gone.id.Public); err == nil {
				t.Errorf("node %d still looks up the expired advertisement", i)
			}
		}
	})
}

func mustCurrent(t testing.TB, n *node) Advertisement {
	t.Helper()
	ad, ok := n.d.Current()
	if !ok {
		t.Fatal("node has not advertised")
	}
	return ad
}

func testIdentityByPub(nodes []*node, pub []byte) *identity.Identity {
	for _, n := range nodes {
		if n.id.Public.Equal(pub) {
			return n.id
		}
	}
	return &identity.Identity{Public: pub}
}

// acceptAll is the validator of a malicious node that stores and serves
// anything.
type acceptAll struct{}

func (acceptAll) Validate(string, []byte) error        { return nil }
func (acceptAll) Select(string, [][]byte) (int, error) { return 0, nil }

// newEvilNode is a discovery node whose DHT stores whatever it is given
// (acceptAll), to play a provider that serves bad records.
func newEvilNode(t *testing.T, name string) (*identity.Identity, host.Host, *Discovery) {
	t.Helper()
	id := testIdentity(name)
	h := newHost(t, id)
	d, err := New(h, id, Options{DHTOptions: []dht.Option{
		dht.Validator(record.NamespacedValidator{Namespace: acceptAll{}}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return id, h, d
}

// A provider that serves a forged advertisement for itself is dropped and
// counted; the honest one is kept.
func TestDiscoverDropsForgedProvider(t *testing.T) {
	nodes := newNet(t, 2, Options{})
	evilID, _, evil := newEvilNode(t, "evil")
	if err := evil.Bootstrap(ctxT(t), []peer.AddrInfo{info(nodes[0].h)}); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[1].d.Advertise(ctxT(t), []string{"memory_sync"}, nil); err != nil {
		t.Fatal(err)
	}
	forged := mustSign(t, evilID, []string{"memory_sync"}, nil, 1, time.Now(), time.Hour)
	forged.Addrs = []string{"/ip4/127.0.0.1/tcp/1"} // not what was signed
	if err := evil.DHT().PutValue(ctxT(t), RecordKey(evilID.Public), encode(t, forged)); err != nil {
		t.Fatal(err)
	}
	c, _ := ServiceCID("memory_sync")
	if err := evil.DHT().Provide(ctxT(t), c, true); err != nil {
		t.Fatal(err)
	}
	res, err := nodes[0].d.Discover(ctxT(t), "memory_sync")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Ads) != 1 || !res.Ads[0].PubKey.Equal(nodes[1].id.Public) {
		t.Errorf("ads = %v, want only the honest node", pubsOf(res.Ads))
	}
	if res.Dropped != 1 || len(res.DropErrors) != 1 || !errors.Is(res.DropErrors[0], ErrBadSignature) {
		t.Errorf("dropped %d %v, want 1 ErrBadSignature", res.Dropped, res.DropErrors)
	}
}

// Run keeps a short-lived advertisement alive past its first expiry, and
// it lapses once Run stops.
func TestRunRepublishes(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a real 2 s TTL")
	}
	const ttl = 2 * time.Second
	nodes := newNet(t, 2, Options{TTL: ttl, RepublishEvery: 300 * time.Millisecond, QueryTimeout: 5 * time.Second})
	first, err := nodes[1].d.Advertise(ctxT(t), []string{"memory_sync"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- nodes[1].d.Run(ctx) }()
	time.Sleep(ttl + 500*time.Millisecond)
	ad, err := nodes[0].d.Lookup(ctxT(t), nodes[1].id.Public)
	if err != nil || ad.Seq <= first.Seq {
		t.Fatalf("while running: Lookup = seq %d, %v; want > %d", ad.Seq, err, first.Seq)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	// A republish may have landed after the Lookup above; wait for the
	// newest one on the network to expire.
	if last, err := nodes[0].d.Lookup(ctxT(t), nodes[1].id.Public); err == nil {
		ad = last
	}
	time.Sleep(time.Until(ad.Expires) + 100*time.Millisecond)
	if _, err := nodes[0].d.Lookup(ctxT(t), nodes[1].id.Public); !errors.Is(err, ErrNoAdvertisement) {
		t.Errorf("after Run stopped and ttl passed: Lookup = %v, want ErrNoAdvertisement", err)
	}
	res, err := nodes[0].d.Discover(ctxT(t), "memory_sync")
	if err != nil || len(res.Ads) != 0 || res.Stale != 1 {
		t.Errorf("Discover = %d ads, stale %d, %v; want 0 ads, 1 stale", len(res.Ads), res.Stale, err)
	}
}

func TestNewRejects(t *testing.T) {
	id := testIdentity("a")
	h := newHost(t, id)
	if _, err := New(h, testIdentity("b"), Options{}); !errors.Is(err, ErrIdentityMismatch) {
		t.Errorf("New with another identity = %v", err)
	}
	for _, o := range []Options{{TTL: MaxLifetime + time.Second}, {TTL: time.Minute, RepublishEvery: time.Minute}, {RetryMin: time.Minute, RetryMax: time.Second}} {
		if _, err := New(h, id, o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
}

// lockedBuffer collects log output from several goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runUntilCleanup runs n's republish loop for the rest of the test.
func runUntilCleanup(t *testing.T, n *node) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	})
}

// waitLookup polls from's DHT for of's advertisement until ok accepts it.
func waitLookup(t *testing.T, from, of *node, within time.Duration, ok func(Advertisement) bool) Advertisement {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ad, err := from.d.Lookup(ctxT(t), of.id.Public)
		if err == nil && ok(ad) {
			return ad
		}
		if time.Now().After(deadline) {
			t.Fatalf("no acceptable advertisement within %s: last %+v, %v", within, ad, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// An Advertise that fails (here: no peers yet) is retried by Run soon and
// with backoff, not after a whole republish interval (30 min here), and
// the retry publishes the set Advertise was given.
func TestRunRetriesSoonAfterFailedAdvertise(t *testing.T) {
	seed := newNode(t, "seed", Options{})
	var logs lockedBuffer
	x := newNode(t, "lonely", Options{
		RetryMin: 100 * time.Millisecond, RetryMax: 400 * time.Millisecond, QueryTimeout: 5 * time.Second,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	runUntilCleanup(t, x)
	if _, err := x.d.Advertise(ctxT(t), []string{"chat"}, nil); err == nil {
		t.Fatal("Advertise with no peers succeeded")
	}
	// Retries after 100, 200, 400, 400 ms: about 4 in 1.5 s. Fewer than 2
	// (waited for, so a loaded machine only makes it slower) means the
	// failure was not retried; more than one per 400 ms after the first
	// few means no backoff.
	t0 := time.Now()
	n := 0
	for {
		n = strings.Count(logs.String(), "discovery: publish failed")
		if n >= 2 && time.Since(t0) >= 1500*time.Millisecond {
			break
		}
		if time.Since(t0) > 20*time.Second {
			t.Fatalf("%d retries in 20 s, want at least 2:\n%s", n, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if most := 4 + int(time.Since(t0)/(400*time.Millisecond)); n > most {
		t.Errorf("%d retries in %v, want at most %d (backoff to 400 ms):\n%s", n, time.Since(t0).Round(time.Millisecond), most, logs.String())
	}
	if _, ok := x.d.Current(); ok {
		t.Fatal("published without peers")
	}
	start := time.Now()
	if err := x.d.Bootstrap(ctxT(t), []peer.AddrInfo{info(seed.h)}); err != nil {
		t.Fatal(err)
	}
	// Current changes only when a publish succeeded (a failed one may
	// leave its record in x's own store, which seed could read from x).
	for {
		if ad, ok := x.d.Current(); ok {
			if !slices.Equal(ad.Services, []string{"chat"}) {
				t.Errorf("published services %v, want [chat]", ad.Services)
			}
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("not published 10 s after the first peer:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("published %s after the first peer", time.Since(start).Round(time.Millisecond))
	if ad := waitLookup(t, seed, x, 5*time.Second, func(Advertisement) bool { return true }); !slices.Equal(ad.Services, []string{"chat"}) {
		t.Errorf("seed looks up services %v, want [chat]", ad.Services)
	}
}

// Run publishes only what it is told to: nothing before SetAdvertised or
// Advertise, then the current set, re-read on every pass, until
// StopAdvertising.
func TestRunPublishesCurrentSet(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for real republish intervals")
	}
	seed := newNode(t, "seed", Options{})
	x := newNode(t, "x", Options{TTL: 4 * time.Second, RepublishEvery: 400 * time.Millisecond, QueryTimeout: 5 * time.Second})
	runUntilCleanup(t, x)
	if err := x.d.Bootstrap(ctxT(t), []peer.AddrInfo{info(seed.h)}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if ad, ok := x.d.Current(); ok {
		t.Fatalf("published %+v with nothing advertised", ad)
	}
	if _, err := seed.d.Lookup(ctxT(t), x.id.Public); !errors.Is(err, ErrNoAdvertisement) {
		t.Fatalf("Lookup with nothing advertised = %v, want ErrNoAdvertisement", err)
	}

	if err := x.d.SetAdvertised([]string{"memory_sync"}, nil); err != nil {
		t.Fatal(err)
	}
	first := waitLookup(t, seed, x, 5*time.Second, func(ad Advertisement) bool { return ad.Offers("memory_sync") })
	if err := x.d.SetAdvertised([]string{"chat"}, nil); err != nil {
		t.Fatal(err)
	}
	second := waitLookup(t, seed, x, 5*time.Second, func(ad Advertisement) bool {
		return ad.Seq > first.Seq && slices.Equal(ad.Services, []string{"chat"})
	})
	// Later passes keep the new set.
	third := waitLookup(t, seed, x, 5*time.Second, func(ad Advertisement) bool { return ad.Seq > second.Seq })
	if !slices.Equal(third.Services, []string{"chat"}) {
		t.Errorf("republished services %v, want [chat]", third.Services)
	}

	x.d.StopAdvertising() // returns after any publish in flight
	stopped, _ := x.d.Current()
	time.Sleep(time.Second)
	if now, _ := x.d.Current(); now.Seq != stopped.Seq {
		t.Errorf("republished after StopAdvertising: seq %d then %d", stopped.Seq, now.Seq)
	}
}

// A restarted agent whose first advertise ran before bootstrap (so its
// lookup of its own record reached nobody) still raises seq above the
// record the network holds once it has peers.
func TestSeqRaisedAboveNetworkAfterBootstrap(t *testing.T) {
	nodes := newNet(t, 2, Options{})
	xid := testIdentity("restarted")
	high := uint64(time.Now().UnixNano()) + 1e18 // a clock since set back
	prior := mustSign(t, xid, []string{"memory_sync"}, nil, high, time.Now(), time.Hour)
	// From node 1, whose routing table is sure to hold node 0 (newNet
	// waited for it), so both store the record.
	if err := nodes[1].d.DHT().PutValue(ctxT(t), RecordKey(xid.Public), encode(t, prior)); err != nil {
		t.Fatal(err)
	}
	h := newHost(t, xid)
	xd, err := New(h, xid, Options{QueryTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { xd.Close() })
	if _, err := xd.Advertise(ctxT(t), []string{"memory_sync"}, nil); err == nil {
		t.Fatal("Advertise before bootstrap succeeded")
	}
	if err := xd.Bootstrap(ctxT(t), []peer.AddrInfo{info(nodes[0].h)}); err != nil {
		t.Fatal(err)
	}
	ad, err := xd.Advertise(ctxT(t), []string{"memory_sync"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ad.Seq <= high {
		t.Fatalf("seq %d not above the network's %d", ad.Seq, high)
	}
	for i, n := range nodes {
		if got, err := n.d.Lookup(ctxT(t), xid.Public); err != nil || got.Seq != ad.Seq {
			t.Errorf("node %d Lookup = seq %d, %v; want %d", i, got.Seq, err, ad.Seq)
		}
	}
}

// A provider that serves an older advertisement of itself than one already
// verified, with nothing newer in the DHT, is ErrReplayed: from Lookup,
// from fetch, and counted as dropped by Discover.
func TestReplayedAdvertisementFromProvider(t *testing.T) {
	evilID, evilHost, evil := newEvilNode(t, "replayer")
	// The observer is a DHT client, so the only copy of the record is the
	// one the provider holds.
	obs := newNode(t, "observer", Options{DHTOptions: []dht.Option{dht.Mode(dht.ModeClient)}})
	if err := obs.d.Bootstrap(ctxT(t), []peer.AddrInfo{info(evilHost)}); err != nil {
		t.Fatal(err)
	}
	key := RecordKey(evilID.Public)
	now := time.Now()
	put := func(seq uint64) {
		// Stored locally; the DHT has no other server to send it to.
		_ = evil.DHT().PutValue(ctxT(t), key, encode(t, mustSign(t, evilID, []string{"memory_sync"}, nil, seq, now, time.Hour)))
	}
	put(10)
	c, _ := ServiceCID("memory_sync")
	_ = evil.DHT().Provide(ctxT(t), c, true)
	res, err := obs.d.Discover(ctxT(t), "memory_sync")
	if err != nil || len(res.Ads) != 1 || res.Ads[0].Seq != 10 {
		t.Fatalf("Discover = %d ads, dropped %d %v, %v; want seq 10", len(res.Ads), res.Dropped, res.DropErrors, err)
	}
	put(5)
	if _, err := obs.d.Lookup(ctxT(t), evilID.Public); !errors.Is(err, ErrReplayed) {
		t.Errorf("Lookup of the replay = %v, want ErrReplayed", err)
	}
	if _, err := obs.d.fetch(ctxT(t), info(evilHost)); !errors.Is(err, ErrReplayed) {
		t.Errorf("fetch of the replay = %v, want ErrReplayed", err)
	}
	res, err = obs.d.Discover(ctxT(t), "memory_sync")
	if err != nil || len(res.Ads) != 0 || res.Dropped != 1 || !errors.Is(res.DropErrors[0], ErrReplayed) {
		t.Errorf("Discover = %d ads, dropped %d %v, %v; want 1 dropped as ErrReplayed", len(res.Ads), res.Dropped, res.DropErrors, err)
	}
	// A newer one is accepted again.
	put(11)
	if ad, err := obs.d.Lookup(ctxT(t), evilID.Public); err != nil || ad.Seq != 11 {
		t.Errorf("Lookup after a newer publish = seq %d, %v; want 11", ad.Seq, err)
	}
}

func TestRetryBackoff(t *testing.T) {
	o := Options{RetryMin: time.Second, RetryMax: 5 * time.Second}
	if err := o.setDefaults(); err != nil {
		t.Fatal(err)
	}
	d := &Discovery{opts: o}
	var got []time.Duration
	for n := 1; n <= 6; n++ {
		got = append(got, d.retryAfter(n))
	}
	if want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second, 5 * time.Second}; !slices.Equal(got, want) {
		t.Errorf("backoff %v, want %v", got, want)
	}
	def := Options{}
	if err := def.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if def.RetryMin != 5*time.Second || def.RetryMax != 2*time.Minute {
		t.Errorf("default backoff %s..%s, want 5s..2m", def.RetryMin, def.RetryMax)
	}
	short := Options{TTL: 2 * time.Second, RepublishEvery: 400 * time.Millisecond}
	if err := short.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if short.RetryMin != 50*time.Millisecond || short.RetryMax != 100*time.Millisecond {
		t.Errorf("short-ttl backoff %s..%s, want 50ms..100ms", short.RetryMin, short.RetryMax)
	}
}
