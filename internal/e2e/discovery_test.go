package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	dhtpb "github.com/libp2p/go-libp2p-kad-dht/pb"
	record "github.com/libp2p/go-libp2p-record"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"

	"github.com/mmogit/mmogit/internal/cluster"
	"github.com/mmogit/mmogit/internal/config"
	"github.com/mmogit/mmogit/internal/discovery"
	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/localapi"
	"github.com/mmogit/mmogit/internal/oniontransport"
	"github.com/mmogit/mmogit/internal/p2p"
	"github.com/mmogit/mmogit/internal/socks"
	"github.com/mmogit/mmogit/internal/testnet"
)

// shortTTL is the advertisement lifetime of the agent whose expiry is
// tested. Its republish interval is TTL/2, so it also proves that a running
// agent stays discoverable past its first expiry.
const shortTTL = 20 * time.Second

// discoverCLI runs `mmogit --json tor discover service` on a.
func discoverCLI(t *testing.T, a *cluster.Agent, service string) ([]localapi.Advertisement, error) {
	out, err := run(t, a, "--json", "tor", "discover", service)
	if err != nil {
		return nil, err
	}
	var ads []localapi.Advertisement
	if err := json.Unmarshal([]byte(out), &ads); err != nil {
		return nil, fmt.Errorf("discover output %q: %w", out, err)
	}
	return ads, nil
}

// checkAds compares what self discovered with the agents expected: the same
// set of onion addresses, each advertisement complete and naming the key
// its onion address is derived from. It returns "" when they match.
func checkAds(ads []localapi.Advertisement, want []*cluster.Agent, service string) string {
	byOnion := map[string]*cluster.Agent{}
	for _, a := range want {
		byOnion[a.ID.OnionAddress()] = a
	}
	var problems []string
	got := map[string]bool{}
	for _, ad := range ads {
		a, ok := byOnion[ad.OnionAddress]
		switch {
		case !ok:
			problems = append(problems, "unexpected "+ad.OnionAddress)
			continue
		case got[ad.OnionAddress]:
			problems = append(problems, "duplicate "+ad.OnionAddress)
		case ad.Pubkey != a.ID.PubHex():
			problems = append(problems, fmt.Sprintf("%s: pubkey %s, want %s", a.Name, ad.Pubkey, a.ID.PubHex()))
		case ad.PeerID != a.ID.PeerID().String():
			problems = append(problems, fmt.Sprintf("%s: peer id %s", a.Name, ad.PeerID))
		case !slices.Contains(ad.Services, service):
			problems = append(problems, fmt.Sprintf("%s: services %v lack %s", a.Name, ad.Services, service))
		case ad.Timestamp.IsZero() || !ad.Expires.After(ad.Timestamp):
			problems = append(problems, fmt.Sprintf("%s: timestamp %v expires %v", a.Name, ad.Timestamp, ad.Expires))
		case len(ad.Addrs) != 0:
			problems = append(problems, fmt.Sprintf("%s: tor-only agent advertised addrs %v", a.Name, ad.Addrs))
		}
		got[ad.OnionAddress] = true
	}
	for o, a := range byOnion {
		if !got[o] {
			problems = append(problems, "missing "+a.Name)
		}
	}
	sort.Strings(problems)
	return strings.Join(problems, "; ")
}

// others returns agents without self, keeping those keep accepts.
func others(agents []*cluster.Agent, self int, keep func(int) bool) []*cluster.Agent {
	var out []*cluster.Agent
	for i, a := range agents {
		if i != self && keep(i) {
			out = append(out, a)
		}
	}
	return out
}

// pollDiscover repeats `tor discover` on a until check passes or the
// deadline; it returns the time to the first complete answer.
// The log line says how many calls it took and how long the slowest was.
func pollDiscover(ctx context.Context, t *testing.T, a *cluster.Agent, service string, check func([]localapi.Advertisement) string) (time.Duration, error) {
	start := time.Now()
	var (
		last    string
		slowest time.Duration
	)
	for attempt := 1; ; attempt++ {
		callStart := time.Now()
		ads, err := discoverCLI(t, a, service)
		slowest = max(slowest, time.Since(callStart))
		if err != nil {
			last = err.Error()
		} else if last = check(ads); last == "" {
			t.Logf("%s: discover %s complete after %s: %d call(s), slowest %s", a.Name, service, time.Since(start).Round(time.Millisecond), attempt, slowest.Round(time.Millisecond))
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return time.Since(start), fmt.Errorf("%s: discover %s after %d attempts in %s (slowest %s): %s", a.Name, service, attempt, time.Since(start).Round(time.Millisecond), slowest.Round(time.Millisecond), last)
		case <-time.After(time.Second):
		}
	}
}

// TestDiscoveryFiveAgents runs five tor-only agents on the private Tor
// network, agent 0 the only bootstrap peer of the others, and checks
// discovery by service, rejection of forged and replayed advertisements by
// every agent over its onion service, and expiry of a stopped agent.
func TestDiscoveryFiveAgents(t *testing.T) {
	if testing.Short() {
		t.Skip("five agents on the private Tor network: slow")
	}
	setupStart := time.Now()
	first := startAgents(t, agentSpec{name: "ag0", services: []string{"memory_sync"}})
	boot := []string{first[0].ID.OnionAddress()}
	specs := make([]agentSpec, 4)
	for i := range specs {
		n := i + 1
		specs[i] = agentSpec{name: fmt.Sprint("ag", n), services: []string{"memory_sync"}, bootstrap: boot}
		if n%2 == 1 {
			specs[i].services = []string{"memory_sync", "chat"}
		}
	}
	// The last agent is the one that stops in the expiry subtest.
	specs[3].configure = func(c *config.Config) { c.AdvertisementTTL = config.Duration(shortTTL) }
	agents := append(first, startAgents(t, specs...)...)
	t.Logf("5 agents ready in %s", time.Since(setupStart).Round(time.Millisecond))
	isChat := func(i int) bool { return i == 1 || i == 3 }
	all := func(int) bool { return true }

	t.Run("every agent finds every other", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		lat := make([]time.Duration, len(agents))
		errs := make([]error, len(agents))
		var wg sync.WaitGroup
		for i, a := range agents {
			wg.Add(1)
			go func() {
				defer wg.Done()
				want := others(agents, i, all)
				lat[i], errs[i] = pollDiscover(ctx, t, a, "memory_sync", func(ads []localapi.Advertisement) string {
					return checkAds(ads, want, "memory_sync")
				})
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		if t.Failed() {
			t.FailNow()
		}
		sorted := slices.Clone(lat)
		slices.Sort(sorted)
		t.Logf("discovery latency over %d agents: median %s, worst %s", len(sorted), sorted[len(sorted)/2].Round(time.Millisecond), sorted[len(sorted)-1].Round(time.Millisecond))

		// Every provider record is in place now, so one call suffices.
		for i, a := range agents {
			ads, err := discoverCLI(t, a, "chat")
			if err != nil {
				t.Fatal(err)
			}
			if p := checkAds(ads, others(agents, i, isChat), "chat"); p != "" {
				t.Errorf("%s: discover chat: %s", a.Name, p)
			}
		}
	})

	t.Run("forged advertisements rejected by every agent", func(t *testing.T) {
		testForgeries(t, agents)
	})

	t.Run("stopped agent expires", func(t *testing.T) {
		gone, rest := agents[4], agents[:4]
		// Agent 4 has been up for more than its TTL by now; it is still
		// discoverable because it republishes.
		ads, err := discoverCLI(t, agents[0], "memory_sync")
		if err != nil {
			t.Fatal(err)
		}
		var last localapi.Advertisement
		for _, ad := range ads {
			if ad.OnionAddress == gone.ID.OnionAddress() {
				last = ad
			}
		}
		if last.Seq == 0 {
			t.Fatalf("%s not discoverable before it stopped: %d ads", gone.Name, len(ads))
		}
		stopped := time.Now()
		if err := gone.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s stopped; its last advertisement seen expires in %s", gone.Name, time.Until(last.Expires).Round(time.Second))
		// A republish may have landed after the discover above, so the
		// newest advertisement lives at most one TTL from now.
		ctx, cancel := context.WithTimeout(context.Background(), shortTTL+90*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		for i, a := range rest {
			wg.Add(1)
			go func() {
				defer wg.Done()
				want := others(rest, i, all)
				_, err := pollDiscover(ctx, t, a, "memory_sync", func(ads []localapi.Advertisement) string {
					return checkAds(ads, want, "memory_sync")
				})
				if err != nil {
					t.Error(err)
					return
				}
				t.Logf("%s: %s gone from discover %s after it stopped", a.Name, gone.Name, time.Since(stopped).Round(time.Millisecond))
			}()
		}
		wg.Wait()
		// Its provider records outlive it; discovering must not stall on
		// the dead onion service.
		for _, a := range rest {
			res, err := a.Client.Discover(context.Background(), "memory_sync")
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: discover memory_sync with %s gone: %d ads in %.0f ms", a.Name, gone.Name, len(res.Ads), res.DurationMs)
		}
	})
}

// mallory is a client in the test process: a tor-only libp2p host dialing
// through the private network's client tor and a kad-dht client speaking
// mmogit's DHT protocol, used to send raw DHT RPCs to each agent.
type mallory struct {
	id   *identity.Identity
	host *p2p.Host
	pm   *dhtpb.ProtocolMessenger
}

func testIdentity(name string) *identity.Identity {
	seed := sha256.Sum256([]byte("mmogit e2e discovery " + name))
	return identity.FromSeed(seed[:])
}

func newMallory(t *testing.T) *mallory {
	t.Helper()
	id := testIdentity("mallory")
	// A short per-dial limit: tor occasionally sits on a rendezvous that
	// will not complete, and connect retries (as the agent does) rather
	// than spending the whole test's budget on one stuck dial.
	base := &socks.Dialer{ProxyAddr: testnet.Shared(t).SocksAddr(), Timeout: 20 * time.Second}
	h, err := p2p.New(context.Background(), p2p.Config{Identity: id, Mode: p2p.ModeTor,
		OnionDialer: func(p peer.ID) oniontransport.ContextDialer { return base.ForPeer(p.String()) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	// A client: it serves no DHT requests, so no agent routes through it.
	kad, err := dht.New(h.Host(), dht.Mode(dht.ModeClient), dht.ProtocolPrefix(discovery.ProtocolPrefix),
		dht.BootstrapPeers(), dht.Validator(record.NamespacedValidator{}),
		dht.NamespacedValidator(discovery.Namespace, discovery.Validator{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kad.Close() })
	pm, err := dhtpb.NewProtocolMessenger(kad.MessageSender())
	if err != nil {
		t.Fatal(err)
	}
	return &mallory{id: id, host: h, pm: pm}
}

// connect dials an agent's onion service, retrying while the descriptor is
// not yet fetched or a dial stalled.
func (m *mallory) connect(ctx context.Context, t *testing.T, a *cluster.Agent) error {
	start := time.Now()
	for attempt := 1; ; attempt++ {
		_, err := m.host.ConnectOnion(ctx, a.ID.OnionAddress(), config.Default().Tor.OnionPort)
		transient := errors.Is(err, socks.ErrOnionServiceUnreachable) || errors.Is(err, context.DeadlineExceeded)
		if err == nil || !transient || ctx.Err() != nil {
			if err != nil {
				err = fmt.Errorf("attempt %d after %s: %w", attempt, time.Since(start).Round(time.Millisecond), err)
			}
			return err
		}
		t.Logf("connect to %s: attempt %d failed at %s: %v", a.Name, attempt, time.Since(start).Round(time.Millisecond), err)
		m.host.Host().Network().(*swarm.Swarm).Backoff().Clear(a.ID.PeerID())
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Second):
		}
	}
}

func (m *mallory) put(ctx context.Context, a *cluster.Agent, key string, val []byte) error {
	return m.pm.PutValue(ctx, a.ID.PeerID(), &recpb.Record{Key: []byte(key), Value: val})
}

func (m *mallory) get(ctx context.Context, a *cluster.Agent, key string) ([]byte, error) {
	rec, _, err := m.pm.GetValue(ctx, a.ID.PeerID(), key)
	if err != nil || rec == nil {
		return nil, err
	}
	return rec.GetValue(), nil
}

func sign(t *testing.T, id *identity.Identity, services []string, seq uint64, now time.Time, ttl time.Duration) discovery.Advertisement {
	t.Helper()
	ad, err := discovery.Sign(id, services, nil, seq, now, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return ad
}

func encodeAd(t *testing.T, ad discovery.Advertisement) []byte {
	t.Helper()
	b, err := json.Marshal(ad)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// resign signs ad again with id after its fields were edited.
func resign(t *testing.T, id *identity.Identity, ad discovery.Advertisement) discovery.Advertisement {
	t.Helper()
	msg, err := ad.SigningBytes()
	if err != nil {
		t.Fatal(err)
	}
	ad.Signature = ed25519.Sign(id.Private, msg)
	return ad
}

func testForgeries(t *testing.T, agents []*cluster.Agent) {
	m := newMallory(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(agents))
	for i, a := range agents {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = m.connect(ctx, t, a) }()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Logf("tor log of the test client:\n%s", cluster.TailFile(filepath.Join(testnetDir(t), "client", "tor.log"), 30))
			t.Fatalf("connect to %s over its onion service: %v", agents[i].Name, err)
		}
	}
	t.Logf("test client connected to %d agents over onion in %s", len(agents), time.Since(start).Round(time.Millisecond))

	victim := agents[1]
	vkey := discovery.RecordKey(victim.ID.Public)
	legit := map[string][]byte{} // what each agent served for the victim before
	for _, a := range agents {
		val, err := m.get(ctx, a, vkey)
		if err != nil {
			t.Fatalf("get victim's record from %s: %v", a.Name, err)
		}
		legit[a.Name] = val
	}

	now := time.Now()
	const ttl = time.Hour
	// (a) Mallory signs, with her own key, an advertisement naming the
	// victim's onion address: the signature is valid, the address is not
	// hers.
	wrongOnion := sign(t, m.id, []string{"memory_sync"}, 1, now, ttl)
	wrongOnion.OnionAddress = victim.ID.OnionAddress()
	wrongOnion = resign(t, m.id, wrongOnion)
	// (b) The victim's real advertisement with a service added afterwards.
	badSig := sign(t, victim.ID, []string{"chat", "memory_sync"}, ^uint64(0)-1, now, ttl)
	badSig.Services = []string{"chat", "evil", "memory_sync"}
	// (c) Validly signed by the victim's key with the highest seq, but
	// expired an hour ago: it would win every Select if it were stored.
	expired := sign(t, victim.ID, []string{"memory_sync"}, ^uint64(0), now.Add(-2*ttl), ttl)
	forgeries := []struct {
		name string
		key  string
		val  []byte
		want error // what the agents' own verification says
	}{
		{"onion address of another key, under the signer's key", discovery.RecordKey(m.id.Public), encodeAd(t, wrongOnion), discovery.ErrOnionMismatch},
		{"onion address of another key, under that key", vkey, encodeAd(t, wrongOnion), discovery.ErrOnionMismatch},
		{"bad signature", vkey, encodeAd(t, badSig), discovery.ErrBadSignature},
		{"expired", vkey, encodeAd(t, expired), discovery.ErrExpired},
	}
	for _, f := range forgeries {
		// The same check the agents run, to be sure each forgery is
		// refused for the reason named and not for a mistake in the test.
		if err := (discovery.Validator{}).Validate(f.key, f.val); !errors.Is(err, f.want) {
			t.Fatalf("%s: local validation = %v, want %v", f.name, err, f.want)
		}
		for _, a := range agents {
			if err := m.put(ctx, a, f.key, f.val); err == nil {
				t.Errorf("%s: %s accepted PUT_VALUE", f.name, a.Name)
			}
			got, err := m.get(ctx, a, f.key)
			if err != nil {
				t.Fatalf("%s: get from %s: %v", f.name, a.Name, err)
			}
			switch {
			case f.key != vkey && got != nil:
				t.Errorf("%s: %s now stores %s", f.name, a.Name, got)
			case f.key == vkey && string(got) != string(legit[a.Name]) && !fresher(got, legit[a.Name], victim.ID.Public):
				t.Errorf("%s: %s now serves %s", f.name, a.Name, got)
			}
		}
	}
	// Every agent still discovers the victim as it advertised itself.
	for _, a := range agents {
		if a == victim {
			continue
		}
		res, err := a.Client.Discover(ctx, "memory_sync")
		if err != nil {
			t.Fatalf("%s: discover: %v", a.Name, err)
		}
		for _, ad := range res.Ads {
			if ad.Pubkey == m.id.PubHex() || ad.OnionAddress == m.id.OnionAddress() {
				t.Errorf("%s discovered mallory: %+v", a.Name, ad)
			}
			if ad.OnionAddress == victim.ID.OnionAddress() && (slices.Contains(ad.Services, "evil") || ad.Pubkey != victim.ID.PubHex() || ad.Seq >= ^uint64(0)-1) {
				t.Errorf("%s discovered a forged victim advertisement: %+v", a.Name, ad)
			}
		}
	}

	t.Run("replayed older advertisement loses", func(t *testing.T) {
		// A victim the test controls, so that both advertisements are
		// validly signed and only the sequence number tells them apart.
		v := testIdentity("replay victim")
		key := discovery.RecordKey(v.Public)
		now := time.Now()
		older := encodeAd(t, sign(t, v, []string{"memory_sync"}, 1, now.Add(-time.Minute), ttl))
		newer := encodeAd(t, sign(t, v, []string{"memory_sync"}, 2, now, ttl))
		for _, a := range agents {
			if err := m.put(ctx, a, key, newer); err != nil {
				t.Fatalf("%s refused the valid seq 2 advertisement: %v", a.Name, err)
			}
			if err := m.put(ctx, a, key, older); err == nil {
				t.Errorf("%s accepted the replayed seq 1 advertisement", a.Name)
			}
			got, err := m.get(ctx, a, key)
			if err != nil {
				t.Fatalf("get from %s: %v", a.Name, err)
			}
			if string(got) != string(newer) {
				t.Errorf("%s serves %s, want the seq 2 advertisement", a.Name, got)
			}
		}
	})
}

// fresher reports whether got is a valid advertisement newer than before:
// an agent republishing between the two reads is not a forgery.
func fresher(got, before []byte, owner ed25519.PublicKey) bool {
	g, err := discovery.DecodeVerify(got, time.Now())
	if err != nil || !g.PubKey.Equal(owner) {
		return false
	}
	if before == nil {
		return true
	}
	b, err := discovery.Decode(before)
	return err == nil && g.Seq > b.Seq
}
