package discovery

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
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

// A provider that serves a forged advertisement for itself is dropped and
// counted; the honest one is kept.
func TestDiscoverDropsForgedProvider(t *testing.T) {
	nodes := newNet(t, 2, Options{})
	evilID := testIdentity("evil")
	evilHost := newHost(t, evilID)
	evil, err := New(evilHost, evilID, Options{DHTOptions: []dht.Option{
		dht.Validator(record.NamespacedValidator{Namespace: acceptAll{}}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { evil.Close() })
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
	for _, o := range []Options{{TTL: MaxLifetime + time.Second}, {TTL: time.Minute, RepublishEvery: time.Minute}} {
		if _, err := New(h, id, o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
}
