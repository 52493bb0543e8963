package discovery

import (
	"container/list"
	"context"
	"encoding/base32"
	"fmt"
	"strings"
	"sync"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/mmogit/mmogit/internal/identity"
)

// Limits on what the DHT server keeps for others. Every fresh key can sign a
// valid advertisement and announce itself as a provider, so without a cap a
// peer minting keys could grow a node's memory for the records' whole
// lifetime (advertisements up to MaxLifetime, provider records kad-dht's 48 h).
// The caps sit far above what a network of agents needs: an agent stores one
// advertisement and at most MaxServices provider records.
const (
	// DefaultMaxRecords is how many advertisements a node stores for
	// others; beyond it the one written longest ago is dropped. Its own is
	// never dropped.
	DefaultMaxRecords = 4096
	// DefaultMaxProviders is how many provider records a node stores in
	// total; beyond it the one written longest ago is dropped. Its own are
	// never dropped.
	DefaultMaxProviders = 8192
	// DefaultMaxProvidersPerPeer is how many provider records one peer may
	// have stored here: an honest agent provides its services, at most
	// MaxServices of them; beyond it that peer's oldest record is dropped,
	// so one peer cannot crowd out the others.
	DefaultMaxProvidersPerPeer = MaxServices
)

// providersPrefix is kad-dht's datastore prefix for provider records
// (records.ProvidersKeyPrefix): /providers/<base32 key>/<base32 peer id>.
const providersPrefix = "/providers/"

// StoreLimits bound a boundedStore; zero fields take the defaults.
type StoreLimits struct {
	MaxRecords          int
	MaxProviders        int
	MaxProvidersPerPeer int
}

func (l StoreLimits) withDefaults() StoreLimits {
	if l.MaxRecords <= 0 {
		l.MaxRecords = DefaultMaxRecords
	}
	if l.MaxProviders <= 0 {
		l.MaxProviders = DefaultMaxProviders
	}
	if l.MaxProvidersPerPeer <= 0 {
		l.MaxProvidersPerPeer = DefaultMaxProvidersPerPeer
	}
	return l
}

const (
	classRecord = iota
	classProvider
	numClasses
)

// storeEntry is one key the store holds; group is who it counts against
// (the provider's peer ID segment, or the record key itself).
type storeEntry struct {
	key   ds.Key
	class int
	group string
}

// boundedStore is the DHT's datastore: an in-memory map (kad-dht's default)
// that evicts, per class of entry, the entry written longest ago once the
// class is full, and a provider's own oldest record once it has
// MaxProvidersPerPeer. Records are refreshed by their owners (discovery
// republishes every TTL/2), so the oldest write is the least likely to be
// current. This node's own advertisement and provider records are pinned:
// a flood can push out others' records but never make this agent itself
// unfindable from here.
type boundedStore struct {
	ds.Batching
	lim StoreLimits
	// pinRecord and pinGroup name this node's own entries.
	pinRecord ds.Key
	pinGroup  string

	// mu guards the index and serializes writes, so index and map agree.
	mu      sync.Mutex
	order   [numClasses]*list.List // of *storeEntry, oldest write first
	entries map[ds.Key]*list.Element
	groups  map[string][]*list.Element // provider group → its entries, oldest first
}

var _ ds.Batching = (*boundedStore)(nil)

func newBoundedStore(self peer.ID, lim StoreLimits) (*boundedStore, error) {
	pub, err := identity.PublicFromPeerID(self)
	if err != nil {
		return nil, fmt.Errorf("discovery: store: %w", err)
	}
	s := &boundedStore{
		Batching:  dssync.MutexWrap(ds.NewMapDatastore()),
		lim:       lim.withDefaults(),
		pinRecord: recordDsKey(RecordKey(pub)),
		pinGroup:  rawB32.EncodeToString([]byte(self)),
		entries:   map[ds.Key]*list.Element{},
		groups:    map[string][]*list.Element{},
	}
	for i := range s.order {
		s.order[i] = list.New()
	}
	return s, nil
}

// recordDsKey is where kad-dht's value store keeps the record under key
// (records.valueDsKey for a namespace other than "providers").
func recordDsKey(key string) ds.Key {
	return ds.NewKey("/" + Namespace + "/" + rawB32.EncodeToString([]byte(key)))
}

// classify sorts a datastore key into its class and group.
func classify(k ds.Key) (class int, group string) {
	s := k.String()
	if rest, ok := strings.CutPrefix(s, providersPrefix); ok {
		return classProvider, rest[strings.LastIndexByte(rest, '/')+1:]
	}
	return classRecord, s
}

func (s *boundedStore) pinned(e *storeEntry) bool {
	if e.class == classProvider {
		return e.group == s.pinGroup
	}
	return e.key == s.pinRecord
}

// Put stores value under k, first evicting what the limits require.
func (s *boundedStore) Put(ctx context.Context, k ds.Key, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.entries[k]; ok {
		// A rewrite (republish) makes the entry the newest again.
		e := el.Value.(*storeEntry)
		s.order[e.class].MoveToBack(el)
		if e.class == classProvider {
			g := s.groups[e.group]
			for i, x := range g {
				if x == el {
					g = append(append(g[:i:i], g[i+1:]...), el)
					break
				}
			}
			s.groups[e.group] = g
		}
		return s.Batching.Put(ctx, k, value)
	}
	class, group := classify(k)
	e := &storeEntry{key: k, class: class, group: group}
	if class == classProvider && !s.pinned(e) {
		for len(s.groups[group]) >= s.lim.MaxProvidersPerPeer {
			if err := s.evict(ctx, s.groups[group][0]); err != nil {
				return err
			}
		}
	}
	limit := s.lim.MaxRecords
	if class == classProvider {
		limit = s.lim.MaxProviders
	}
	for s.order[class].Len() >= limit {
		victim := s.order[class].Front()
		for victim != nil && s.pinned(victim.Value.(*storeEntry)) {
			victim = victim.Next()
		}
		if victim == nil {
			break // only pinned entries left; they are few
		}
		if err := s.evict(ctx, victim); err != nil {
			return err
		}
	}
	if err := s.Batching.Put(ctx, k, value); err != nil {
		return err
	}
	el := s.order[class].PushBack(e)
	s.entries[k] = el
	if class == classProvider {
		s.groups[group] = append(s.groups[group], el)
	}
	return nil
}

// evict deletes el's entry from the map and the index. s.mu is held.
func (s *boundedStore) evict(ctx context.Context, el *list.Element) error {
	e := el.Value.(*storeEntry)
	if err := s.Batching.Delete(ctx, e.key); err != nil {
		return fmt.Errorf("discovery: evict %s: %w", e.key, err)
	}
	s.unindex(el)
	return nil
}

func (s *boundedStore) unindex(el *list.Element) {
	e := el.Value.(*storeEntry)
	s.order[e.class].Remove(el)
	delete(s.entries, e.key)
	if e.class != classProvider {
		return
	}
	g := s.groups[e.group]
	for i, x := range g {
		if x == el {
			g = append(g[:i:i], g[i+1:]...)
			break
		}
	}
	if len(g) == 0 {
		delete(s.groups, e.group)
	} else {
		s.groups[e.group] = g
	}
}

// Delete removes k (kad-dht's garbage collection of expired records).
func (s *boundedStore) Delete(ctx context.Context, k ds.Key) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.Batching.Delete(ctx, k); err != nil {
		return err
	}
	if el, ok := s.entries[k]; ok {
		s.unindex(el)
	}
	return nil
}

// Batch routes batched writes (the provider manager flushes in batches)
// through Put and Delete, so they are bounded too.
func (s *boundedStore) Batch(context.Context) (ds.Batch, error) {
	return ds.NewBasicBatch(s), nil
}

// StoreStats counts what a node stores for the DHT.
type StoreStats struct {
	Records, Providers, ProviderPeers int
}

// Stats reports how many entries the store holds.
func (s *boundedStore) Stats() StoreStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return StoreStats{
		Records:       s.order[classRecord].Len(),
		Providers:     s.order[classProvider].Len(),
		ProviderPeers: len(s.groups),
	}
}

// noCache is a provider-record cache that holds nothing. kad-dht's default
// LRU caches whole provider sets per key and adds every new provider of a
// cached key to its set in memory, outside any datastore limit; without it
// each GET_PROVIDERS reads the (bounded, in-memory) datastore instead.
type noCache struct{}

func (noCache) Add(key, value any) bool                 { return false }
func (noCache) Get(key any) (value any, ok bool)        { return nil, false }
func (noCache) Contains(key any) bool                   { return false }
func (noCache) Peek(key any) (value any, ok bool)       { return nil, false }
func (noCache) Remove(key any) bool                     { return false }
func (noCache) RemoveOldest() (key, value any, ok bool) { return nil, nil, false }
func (noCache) GetOldest() (key, value any, ok bool)    { return nil, nil, false }
func (noCache) Keys() []any                             { return nil }
func (noCache) Len() int                                { return 0 }
func (noCache) Purge()                                  {}
func (noCache) Resize(int) int                          { return 0 }

// rawB32 is kad-dht's key encoding (go-base32's RawStdEncoding: RFC 4648
// alphabet, no padding), which the pinned keys must match.
var rawB32 = base32.StdEncoding.WithPadding(base32.NoPadding)
