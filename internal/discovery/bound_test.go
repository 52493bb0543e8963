package discovery

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	dhtpb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	mh "github.com/multiformats/go-multihash"
	"google.golang.org/protobuf/proto"

	"github.com/mmogit/mmogit/internal/identity"
)

// freshIdentity is a new random agent key, as a flooding peer would mint.
func freshIdentity(t testing.TB) *identity.Identity {
	seed := make([]byte, 32)
	if _, err := rand.Read(seed); err != nil {
		t.Fatal(err)
	}
	return identity.FromSeed(seed)
}

func heapMiB() float64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapAlloc) / (1 << 20)
}

// sendAddProvider opens a DHT stream from h to p and sends one
// ADD_PROVIDER for key naming h, then waits for p to close the stream,
// which kad-dht does only after handling the message.
func sendAddProvider(ctx context.Context, h host.Host, p peer.ID, key mh.Multihash, addrs []ma.Multiaddr) error {
	s, err := h.NewStream(ctx, p, ProtocolPrefix+"/kad/1.0.0")
	if err != nil {
		return err
	}
	defer s.Reset()
	msg := dhtpb.NewMessage(dhtpb.Message_ADD_PROVIDER, key, 0)
	msg.ProviderPeers = dhtpb.RawPeerInfosToPBPeers([]peer.AddrInfo{{ID: h.ID(), Addrs: addrs}})
	b, err := proto.Marshal(msg)
	if err != nil {
		return err
	}
	frame := binary.AppendUvarint(nil, uint64(len(b)))
	if _, err := s.Write(append(frame, b...)); err != nil {
		return err
	}
	if err := s.CloseWrite(); err != nil {
		return err
	}
	_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.Copy(io.Discard, s)
	return nil
}

// TestStoreBoundedUnderFlood: valid advertisements and provider records
// from any number of fresh keys are what a node stores for the DHT. Pushed
// at one node over TCP, they must stay within the store's limits, one peer
// must not hold more than its share of provider records, and a legitimate
// agent must still be found afterwards.
func TestStoreBoundedUnderFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("floods a node with 10,000 advertisements")
	}
	const (
		floodAds       = 10000 // advertisements, each from a fresh key
		freshProviders = 10000 // provider records, each from a fresh host
		oneBusyPeer    = 500   // provider records from one peer, each a new key
	)
	// The default limits, all below the flood.
	lim := StoreLimits{}.withDefaults()
	nodes := newNet(t, 4, Options{QueryTimeout: 20 * time.Second})
	target, legit, client, attacker := nodes[0], nodes[1], nodes[2], nodes[3]
	ctx := ctxT(t)
	if _, err := legit.d.Advertise(ctx, []string{"memory_sync"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := target.d.Advertise(ctx, []string{"memory_sync"}, nil); err != nil {
		t.Fatal(err)
	}
	before := heapMiB()
	start := time.Now()

	// Advertisements from fresh keys, all through one connection.
	fctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var (
		wg     sync.WaitGroup
		next   atomic.Int64
		failed atomic.Int64
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= floodAds {
				id := freshIdentity(t)
				ad, err := Sign(id, []string{"memory_sync"}, nil, 1, time.Now(), time.Hour)
				if err != nil {
					t.Error(err)
					return
				}
				if err := rawPut(fctx, attacker, target, RecordKey(id.Public), encode(t, ad)); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	adsTook := time.Since(start)

	// One peer providing many keys: its share is capped.
	for i := range oneBusyPeer {
		key, _ := mh.Sum(fmt.Appendf(nil, "busy %d", i), mh.SHA2_256, -1)
		if err := sendAddProvider(fctx, attacker.h, target.h.ID(), key, attacker.h.Addrs()); err != nil {
			t.Fatalf("busy provider %d: %v", i, err)
		}
	}
	// Fresh hosts, each providing the service legit offers.
	svc, _ := ServiceCID("memory_sync")
	for i := range freshProviders {
		id := freshIdentity(t)
		h, err := libp2p.New(
			libp2p.Identity(id.Libp2pKey()),
			libp2p.NoListenAddrs,
			libp2p.Transport(tcp.NewTCPTransport),
			libp2p.Security(noise.ID, noise.New),
			libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
			libp2p.ResourceManager(&network.NullResourceManager{}),
			libp2p.DisableRelay(),
		)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Connect(fctx, info(target.h)); err != nil {
			t.Fatalf("fresh provider %d: %v", i, err)
		}
		// ADD_PROVIDER needs an address of the provider; a fake one will do.
		err = sendAddProvider(fctx, h, target.h.ID(), svc.Hash(), attacker.h.Addrs())
		h.Close()
		if err != nil {
			t.Fatalf("fresh provider %d: %v", i, err)
		}
	}
	// The provider manager buffers writes; GetProviders overlays the
	// buffer, the store holds the rest.
	if _, err := target.d.DHT().ProviderStore().GetProviders(fctx, svc.Hash()); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	after := heapMiB()
	st := target.d.StoreStats()
	t.Logf("flood: %d ads (%d refused) in %s, %d busy-peer provider records, %d fresh-host providers; total %s",
		floodAds, failed.Load(), adsTook.Round(time.Millisecond), oneBusyPeer, freshProviders, took.Round(time.Millisecond))
	t.Logf("target stores %d records (limit %d), %d provider records (limit %d) from %d peers; heap %.1f MiB -> %.1f MiB (+%.1f)",
		st.Records, lim.MaxRecords, st.Providers, lim.MaxProviders, st.ProviderPeers, before, after, after-before)
	if st.Records > lim.MaxRecords {
		t.Errorf("%d records stored, limit %d", st.Records, lim.MaxRecords)
	}
	if st.Providers > lim.MaxProviders {
		t.Errorf("%d provider records stored, limit %d", st.Providers, lim.MaxProviders)
	}
	target.d.store.mu.Lock()
	for g, els := range target.d.store.groups {
		if len(els) > lim.MaxProvidersPerPeer && g != target.d.store.pinGroup {
			t.Errorf("peer %s holds %d provider records, limit %d", g, len(els), lim.MaxProvidersPerPeer)
		}
	}
	target.d.store.mu.Unlock()
	// A fresh budget for the checks: the flood took its own.
	ctx = ctxT(t)
	// The target keeps its own advertisement whatever the flood.
	if _, err := rawGet(ctx, client, target, RecordKey(target.id.Public)); err != nil {
		t.Errorf("target lost its own advertisement: %v", err)
	}

	// The legitimate agent is still found.
	ad, err := client.d.Lookup(ctx, legit.id.Public)
	if err != nil {
		t.Fatalf("lookup of the legitimate agent after the flood: %v", err)
	}
	if !ad.Offers("memory_sync") {
		t.Errorf("legitimate agent's advertisement %+v lost its service", ad)
	}
	res, err := client.d.Discover(ctx, "memory_sync")
	if err != nil {
		t.Fatal(err)
	}
	if !pubsOf(res.Ads)[fmt.Sprintf("%x", []byte(legit.id.Public))] {
		t.Errorf("discover after the flood: legitimate agent missing from %d ads (stale %d, dropped %d)", len(res.Ads), res.Stale, res.Dropped)
	}
}

// TestSeenBounded: Discover verifies the advertisement of every provider
// it is given, and each verified key is remembered for replay detection;
// valid advertisements from fresh keys must not grow that memory without
// bound.
func TestSeenBounded(t *testing.T) {
	n := newNode(t, "seen", Options{})
	for range 3 * maxSeen {
		id := freshIdentity(t)
		ad, err := Sign(id, []string{"memory_sync"}, nil, 1, time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.d.verify(RecordKey(id.Public), encode(t, ad)); err != nil {
			t.Fatal(err)
		}
	}
	n.d.mu.Lock()
	got := len(n.d.seen)
	n.d.mu.Unlock()
	if got > maxSeen {
		t.Errorf("seen holds %d keys after %d verifications, limit %d", got, 3*maxSeen, maxSeen)
	}
}
