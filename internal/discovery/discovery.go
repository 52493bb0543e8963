package discovery

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	dhtpb "github.com/libp2p/go-libp2p-kad-dht/pb"
	dhtrecords "github.com/libp2p/go-libp2p-kad-dht/records"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
	"github.com/mmogit/mmogit/internal/identity"
)

// ProtocolPrefix keeps mmogit's DHT apart from IPFS's public one: nodes
// speaking /ipfs/kad/1.0.0 never talk to us and we never talk to them.
const ProtocolPrefix = "/mmogit"

// Defaults chosen for onion circuits, where a new connection takes seconds
// (docs/spec-notes.md: GetValue ~4.7 s, FindProviders ~5.5 s with 1.5–4 s circuits).
const (
	DefaultTTL                 = time.Hour
	DefaultQueryTimeout        = 60 * time.Second
	DefaultConcurrency         = 5
	DefaultRefreshQueryTimeout = 60 * time.Second
	DefaultLatencyTolerance    = 30 * time.Second
	defaultBootstrapWait       = 5 * time.Second
	defaultRetryMin            = 5 * time.Second
	defaultRetryMax            = 2 * time.Minute
	// peerPoll is how often Run checks whether a DHT that had no peers
	// when a publish failed has some now, to publish without waiting out
	// the backoff.
	peerPoll = 250 * time.Millisecond
	// maxSeen is how many keys' highest sequence numbers are remembered.
	// When full, expired entries go first, then those expiring soonest:
	// forgetting a key only lets a replay of its older record through
	// once, while an unbounded map is memory any provider flood can fill.
	maxSeen = 4096
)

// ErrNoAdvertisement means no valid advertisement was found for a key.
var ErrNoAdvertisement = errors.New("discovery: no advertisement found")

// ErrIdentityMismatch means the host's peer ID is not the identity's key,
// so provider records would point at a peer whose advertisement is missing.
var ErrIdentityMismatch = errors.New("discovery: host peer id is not the identity key")

// Options configures a Discovery. The zero value is usable.
type Options struct {
	// Bootstrap peers are the only peers the DHT seeds its routing table
	// from; there are no public defaults.
	Bootstrap []peer.AddrInfo
	// TTL is how long an advertisement is valid (default DefaultTTL, at
	// most MaxLifetime).
	TTL time.Duration
	// RepublishEvery is how often Run re-signs and republishes; default
	// TTL/2 and must be shorter than TTL so the record never lapses.
	RepublishEvery time.Duration
	// RetryMin and RetryMax bound the backoff after a failed publish: the
	// first retry comes RetryMin after the failure, each further one twice
	// as late, at most RetryMax (defaults: min(5 s, RepublishEvery/8) and
	// min(2 min, RepublishEvery/4); RetryMax is never above RepublishEvery).
	RetryMin, RetryMax time.Duration
	// QueryTimeout bounds each Advertise, Discover and Lookup when the
	// caller's context has no earlier deadline (default DefaultQueryTimeout).
	QueryTimeout time.Duration
	// Concurrency is kad-dht's alpha (parallel peers per query step, each an
	// onion circuit) and the number of advertisements Discover fetches at
	// once (default DefaultConcurrency; kad-dht's own default is 10).
	Concurrency int
	// RoutingTableRefreshQueryTimeout bounds routing-table refresh queries
	// (kad-dht default 10 s, too short for onion circuits).
	RoutingTableRefreshQueryTimeout time.Duration
	// RoutingTableLatencyTolerance is the round-trip time above which a peer
	// is not added to the routing table (kad-dht default 10 s).
	RoutingTableLatencyTolerance time.Duration
	// StoreLimits bound the advertisements and provider records this node
	// stores for others (zero fields: DefaultMaxRecords etc.).
	StoreLimits StoreLimits
	// DHTOptions are appended after the options above, for other kad-dht
	// knobs. They must not replace the validator, protocol prefix,
	// datastore or provider manager options.
	DHTOptions []dht.Option
	// Clock returns the current time for signing and verifying; nil means
	// time.Now. Republish timing always uses real time.
	Clock func() time.Time
	// Logger receives debug and warning messages; nil means silent.
	Logger *slog.Logger
}

func (o *Options) setDefaults() error {
	if o.TTL == 0 {
		o.TTL = DefaultTTL
	}
	if o.TTL < minLifetime || o.TTL > MaxLifetime {
		return fmt.Errorf("discovery: ttl %s outside %s..%s", o.TTL, minLifetime, MaxLifetime)
	}
	if o.RepublishEvery == 0 {
		o.RepublishEvery = o.TTL / 2
	}
	if o.RepublishEvery <= 0 || o.RepublishEvery >= o.TTL {
		return fmt.Errorf("discovery: republish interval %s must be positive and shorter than ttl %s", o.RepublishEvery, o.TTL)
	}
	if o.RetryMin <= 0 {
		o.RetryMin = min(defaultRetryMin, o.RepublishEvery/8)
	}
	if o.RetryMax <= 0 {
		o.RetryMax = max(min(defaultRetryMax, o.RepublishEvery/4), o.RetryMin)
	}
	o.RetryMax = min(o.RetryMax, o.RepublishEvery)
	if o.RetryMin > o.RetryMax {
		return fmt.Errorf("discovery: retry backoff %s..%s is empty", o.RetryMin, o.RetryMax)
	}
	if o.QueryTimeout <= 0 {
		o.QueryTimeout = DefaultQueryTimeout
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.RoutingTableRefreshQueryTimeout <= 0 {
		o.RoutingTableRefreshQueryTimeout = DefaultRefreshQueryTimeout
	}
	if o.RoutingTableLatencyTolerance <= 0 {
		o.RoutingTableLatencyTolerance = DefaultLatencyTolerance
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Discovery publishes this agent's advertisement and finds other agents'.
type Discovery struct {
	h    host.Host
	id   *identity.Identity
	opts Options
	dht  *dht.IpfsDHT
	pm   *dhtpb.ProtocolMessenger
	// store is the DHT's datastore, bounded (see boundedStore).
	store *boundedStore
	log   *slog.Logger
	// wake tells Run that the advertised set or the schedule changed.
	wake chan struct{}
	// closed ends with Close, and with it every operation in flight.
	closed    context.Context
	markClose context.CancelFunc

	closeOnce sync.Once

	// pubMu serializes publishes, so that the set a publish reads and the
	// seq it signs with are never overtaken by a concurrent publish of an
	// older set.
	pubMu sync.Mutex

	// mu guards the fields below.
	mu          sync.Mutex
	advertising bool
	services    []string
	addrs       []string
	lastSeq     uint64
	seqChecked  bool // lastSeq has been raised above what the network holds
	current     Advertisement
	// due is when Run publishes next; failures counts publishes that
	// failed since the last success (the retry backoff exponent).
	due      time.Time
	failures int
	lonely   bool // the last publish failed with an empty routing table
	// seen is the highest seq verified per record key, until that
	// advertisement expires; a lower one is ErrReplayed.
	seen map[string]seenAd
}

type seenAd struct {
	seq     uint64
	expires time.Time
}

// New starts a server-mode DHT on h for the agent id. h must use id's key
// (h.ID() == id.PeerID()). The caller still owns h and closes it after
// Close.
func New(h host.Host, id *identity.Identity, opts Options) (*Discovery, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	if h.ID() != id.PeerID() {
		return nil, fmt.Errorf("%w: host %s, identity %s", ErrIdentityMismatch, h.ID(), id.PeerID())
	}
	store, err := newBoundedStore(h.ID(), opts.StoreLimits)
	if err != nil {
		return nil, err
	}
	dopts := []dht.Option{
		dht.Mode(dht.ModeServer),
		// Records and provider records from any number of fresh keys are
		// valid; the bounded store caps how many are kept, and without the
		// provider cache every provider set lives in that store only.
		dht.Datastore(store),
		dht.ProviderManagerOpts(dhtrecords.Cache(noCache{})),
		dht.ProtocolPrefix(ProtocolPrefix),
		// Validator replaces kad-dht's defaults: no "ipns" (unused) and no
		// "pk" (Ed25519 peer IDs inline their key, so it is never fetched).
		dht.Validator(record.NamespacedValidator{}),
		dht.NamespacedValidator(Namespace, Validator{Clock: opts.Clock}),
		dht.BootstrapPeers(opts.Bootstrap...),
		dht.Concurrency(opts.Concurrency),
		dht.RoutingTableRefreshQueryTimeout(opts.RoutingTableRefreshQueryTimeout),
		dht.RoutingTableLatencyTolerance(opts.RoutingTableLatencyTolerance),
		// No advertisement lives longer than MaxLifetime, so nodes need not
		// keep records longer either.
		dht.MaxRecordAge(MaxLifetime),
	}
	dopts = append(dopts, opts.DHTOptions...)
	kad, err := dht.New(h, dopts...)
	if err != nil {
		return nil, fmt.Errorf("discovery: start dht: %w", err)
	}
	pm, err := dhtpb.NewProtocolMessenger(kad.MessageSender())
	if err != nil {
		kad.Close()
		return nil, fmt.Errorf("discovery: protocol messenger: %w", err)
	}
	closed, markClose := context.WithCancel(context.Background())
	return &Discovery{
		h: h, id: id, opts: opts, dht: kad, pm: pm, store: store, log: opts.Logger,
		wake: make(chan struct{}, 1), closed: closed, markClose: markClose,
		seen: map[string]seenAd{},
	}, nil
}

// StoreStats counts the advertisements and provider records this node
// stores for the DHT.
func (d *Discovery) StoreStats() StoreStats { return d.store.Stats() }

// Limits are the bounds the DHT's store enforces (Options.StoreLimits
// with defaults filled in).
func (d *Discovery) Limits() StoreLimits { return d.store.lim }

// DHT exposes the underlying kad-dht, for the agent's status page and tests.
func (d *Discovery) DHT() *dht.IpfsDHT { return d.dht }

// Close stops Run and the DHT. It does not close the host.
func (d *Discovery) Close() error {
	var err error
	d.closeOnce.Do(func() {
		d.markClose()
		if cerr := d.dht.Close(); cerr != nil {
			err = fmt.Errorf("discovery: close dht: %w", cerr)
		}
	})
	return err
}

// withTimeout bounds ctx by QueryTimeout and by Close.
func (d *Discovery) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, d.opts.QueryTimeout)
	stop := context.AfterFunc(d.closed, cancel)
	return ctx, func() { stop(); cancel() }
}

// Bootstrap connects to peers (in addition to Options.Bootstrap) and
// refreshes the routing table. It fails only if peers were given and none
// could be reached, or ctx ends first.
func (d *Discovery) Bootstrap(ctx context.Context, peers []peer.AddrInfo) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, p := range peers {
		if p.ID == d.h.ID() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.h.Connect(ctx, p); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", p.ID, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(peers) > 0 && len(errs) == len(peers) {
		return fmt.Errorf("discovery: bootstrap: no peer reachable: %w", errors.Join(errs...))
	}
	for _, err := range errs {
		d.log.Warn("discovery: bootstrap peer unreachable", "err", err)
	}
	// Peers join the routing table after identify finishes, asynchronously.
	wait, cancel := context.WithTimeout(ctx, defaultBootstrapWait)
	defer cancel()
	for d.dht.RoutingTable().Size() == 0 {
		select {
		case <-wait.Done():
			if ctx.Err() != nil {
				return fmt.Errorf("discovery: bootstrap: %w", ctx.Err())
			}
			return fmt.Errorf("discovery: bootstrap: routing table still empty after %s", defaultBootstrapWait)
		case <-time.After(20 * time.Millisecond):
		}
	}
	select {
	case err := <-d.dht.RefreshRoutingTable():
		if err != nil {
			d.log.Debug("discovery: routing table refresh", "err", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("discovery: bootstrap: %w", ctx.Err())
	}
}

// nextSeq returns a sequence number above every one this key has used: the
// clock in nanoseconds, raised above the last one issued and above the one
// the network holds (so a clock set back after a restart cannot make a new
// advertisement lose to the old one). The network is asked until it has
// answered once: every publish before that (say, before bootstrap) asks
// again.
func (d *Discovery) nextSeq(ctx context.Context) uint64 {
	d.mu.Lock()
	checked := d.seqChecked
	d.mu.Unlock()
	var netSeq uint64
	if !checked {
		var ok bool
		netSeq, ok = d.networkSeq(ctx)
		if ok {
			d.mu.Lock()
			d.seqChecked = true
			d.mu.Unlock()
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	// Nothing is above the maximum: signing it again ties on seq and wins
	// on the later timestamp.
	above := func(s uint64) uint64 { return max(s, s+1) }
	seq := max(uint64(max(d.opts.Clock().UnixNano(), 0)), above(d.lastSeq), above(netSeq))
	d.lastSeq = seq
	return seq
}

// networkSeq looks up this agent's own advertisement in the DHT. ok is
// true when the answer is definitive: a record was found (seq is its seq),
// or at least one peer answered the query and none held a valid record. A
// lookup that reached nobody (an empty routing table, every peer
// unreachable, a timeout) is not.
func (d *Discovery) networkSeq(ctx context.Context) (seq uint64, ok bool) {
	qctx, cancel := context.WithCancel(ctx)
	qctx, events := routing.RegisterForQueryEvents(qctx)
	answered := make(chan bool, 1)
	go func() {
		got := false
		for ev := range events { // closed when qctx ends
			if ev.Type == routing.PeerResponse {
				got = true
			}
		}
		answered <- got
	}()
	ad, err := d.Lookup(qctx, d.id.Public)
	cancel()
	someone := <-answered
	switch {
	case err == nil:
		return ad.Seq, true
	case errors.Is(err, ErrNoAdvertisement) && someone:
		return 0, true
	default:
		d.log.Debug("discovery: own advertisement lookup inconclusive", "err", err, "answered", someone)
		return 0, false
	}
}

// Advertise signs an advertisement for services and addrs, stores it in the
// DHT and announces this agent as a provider of each service. addrs are
// direct multiaddrs and must be empty when the transport policy forbids
// direct connections. The set replaces any set given before and is what
// Run republishes from now on, also after an error here (typically a DHT
// with no peers yet): Run then retries soon, with backoff. If Run is
// publishing at the time, Advertise waits for it.
func (d *Discovery) Advertise(ctx context.Context, services, addrs []string) (Advertisement, error) {
	if err := d.setAdvertised(services, addrs); err != nil {
		return Advertisement{}, err
	}
	ad, err := d.publish(ctx)
	d.poke()
	return ad, err
}

// SetAdvertised makes services and addrs the set Run publishes, as
// Advertise does, without publishing here: Run publishes it as soon as it
// runs (or right away if it is running). For an agent's configured
// services at start-up, before the DHT has peers.
func (d *Discovery) SetAdvertised(services, addrs []string) error {
	if err := d.setAdvertised(services, addrs); err != nil {
		return err
	}
	d.mu.Lock()
	d.due = time.Time{}
	d.mu.Unlock()
	d.poke()
	return nil
}

func (d *Discovery) setAdvertised(services, addrs []string) error {
	svc, err := NormalizeServices(services)
	if err != nil {
		return err
	}
	if err := validateAddrs(addrs); err != nil {
		return err
	}
	d.mu.Lock()
	d.advertising, d.services, d.addrs = true, svc, slices.Clone(addrs)
	d.mu.Unlock()
	return nil
}

// poke tells Run to look at the schedule again.
func (d *Discovery) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// errNotAdvertising ends a publish that StopAdvertising overtook.
var errNotAdvertising = errors.New("discovery: not advertising")

// publish signs and stores the current set once, and schedules the next
// publish: RepublishEvery after a success, the backoff after a failure.
func (d *Discovery) publish(ctx context.Context) (Advertisement, error) {
	d.pubMu.Lock()
	defer d.pubMu.Unlock()
	ctx, cancel := d.withTimeout(ctx)
	defer cancel()
	d.mu.Lock()
	on, svc, addrs := d.advertising, d.services, d.addrs
	d.mu.Unlock()
	if !on {
		return Advertisement{}, errNotAdvertising
	}
	ad, err := d.putAd(ctx, svc, addrs)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		d.failures++
		d.due = time.Now().Add(d.retryAfter(d.failures))
		d.lonely = d.dht.RoutingTable().Size() == 0
		return Advertisement{}, err
	}
	d.failures, d.lonely = 0, false
	d.due = time.Now().Add(d.opts.RepublishEvery)
	d.current = ad
	return ad, nil
}

// retryAfter is the wait after the n-th failure in a row: RetryMin,
// doubling, at most RetryMax.
func (d *Discovery) retryAfter(n int) time.Duration {
	wait := d.opts.RetryMin
	for i := 1; i < n && wait < d.opts.RetryMax; i++ {
		wait *= 2
	}
	return min(wait, d.opts.RetryMax)
}

// putAd signs svc and addrs and stores the advertisement and the
// service provider records.
func (d *Discovery) putAd(ctx context.Context, svc, addrs []string) (Advertisement, error) {
	ad, err := Sign(d.id, svc, addrs, d.nextSeq(ctx), d.opts.Clock(), d.opts.TTL)
	if err != nil {
		return Advertisement{}, err
	}
	val, err := ad.Encode()
	if err != nil {
		return Advertisement{}, fmt.Errorf("discovery: encode: %w", err)
	}
	errs := make([]error, len(svc)+1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := d.dht.PutValue(ctx, RecordKey(d.id.Public), val); err != nil {
			errs[0] = fmt.Errorf("put advertisement: %w", err)
		}
	}()
	for i, s := range svc {
		c, _ := ServiceCID(s) // s was validated by NormalizeServices
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.dht.Provide(ctx, c, true); err != nil {
				errs[i+1] = fmt.Errorf("provide %s: %w", s, err)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return Advertisement{}, fmt.Errorf("discovery: advertise: %w", err)
	}
	d.log.Debug("discovery: advertised", "seq", ad.Seq, "services", svc, "expires", ad.Expires)
	return ad, nil
}

// Current returns the last advertisement published successfully.
func (d *Discovery) Current() (Advertisement, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.current, d.current.Seq != 0
}

// Advertised returns the set Run keeps published, and false if there is
// none (nothing advertised yet, or StopAdvertising).
func (d *Discovery) Advertised() (services, addrs []string, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.services), slices.Clone(d.addrs), d.advertising
}

// StopAdvertising stops Run from republishing. Records already in the DHT
// cannot be withdrawn; the advertisement stops verifying at its expiry
// (within TTL), after which Discover no longer returns this agent. It
// returns once no publish is in flight, so none lands after it.
func (d *Discovery) StopAdvertising() {
	d.mu.Lock()
	d.advertising = false
	d.mu.Unlock()
	d.poke()
	// publish reads advertising under pubMu: one that started before
	// finishes here, any later one sees false.
	d.pubMu.Lock()
	d.pubMu.Unlock()
}

// Run is the republish loop. While a set is advertised (Advertise,
// SetAdvertised) it publishes it, re-read on every pass: right away if it
// was never published, then every RepublishEvery after the last success,
// and after a failure again after RetryMin, doubling up to RetryMax,
// until a publish succeeds; a failure with no peers at all is retried as
// soon as the routing table has one. With nothing advertised it waits. It
// returns ctx.Err() when ctx ends, or nil after Close.
func (d *Discovery) Run(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	poll := time.NewTicker(peerPoll)
	defer poll.Stop()
	for {
		d.mu.Lock()
		on, due, lonely := d.advertising, d.due, d.lonely
		d.mu.Unlock()
		var fire, peers <-chan time.Time
		if on {
			timer.Reset(max(time.Until(due), 0))
			fire = timer.C
			if lonely {
				peers = poll.C
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-d.closed.Done():
			return nil
		case <-d.wake:
			// The set or the schedule changed; look again.
		case <-peers:
			if d.dht.RoutingTable().Size() > 0 {
				d.mu.Lock()
				d.due, d.lonely = time.Now(), false
				d.mu.Unlock()
			}
		case <-fire:
			if _, err := d.publish(ctx); err != nil && !errors.Is(err, errNotAdvertising) {
				if ctx.Err() != nil || d.closed.Err() != nil {
					continue
				}
				d.mu.Lock()
				retry := time.Until(d.due).Round(time.Millisecond)
				d.mu.Unlock()
				d.log.Warn("discovery: publish failed", "err", err, "retry_in", retry)
			}
		}
	}
}

// Lookup fetches and verifies the advertisement of pub from the DHT. A
// valid advertisement with a lower seq than one this node already verified
// for pub (and that has not expired) is ErrReplayed.
func (d *Discovery) Lookup(ctx context.Context, pub ed25519.PublicKey) (Advertisement, error) {
	if len(pub) != ed25519.PublicKeySize {
		return Advertisement{}, fmt.Errorf("%w: public key of %d bytes", ErrMalformed, len(pub))
	}
	ctx, cancel := d.withTimeout(ctx)
	defer cancel()
	key := RecordKey(pub)
	val, err := d.dht.GetValue(ctx, key)
	if err != nil {
		if errors.Is(err, routing.ErrNotFound) {
			return Advertisement{}, fmt.Errorf("%w: %x: %w", ErrNoAdvertisement, []byte(pub), err)
		}
		return Advertisement{}, fmt.Errorf("discovery: lookup %x: %w", []byte(pub), err)
	}
	// The DHT validated val with the same Validator; decode it again for
	// the typed result (cheap next to the network round trips).
	return d.verify(key, val)
}

// verify validates val under key and checks it against the highest seq
// seen for key, which it then raises.
func (d *Discovery) verify(key string, val []byte) (Advertisement, error) {
	if err := (Validator{Clock: d.opts.Clock}).Validate(key, val); err != nil {
		return Advertisement{}, err
	}
	ad, err := Decode(val)
	if err != nil {
		return Advertisement{}, err
	}
	now := d.opts.Clock()
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.seen[key]; ok && now.Before(s.expires) {
		if ad.Seq < s.seq {
			return Advertisement{}, fmt.Errorf("%w: %s: seq %d, already verified seq %d", ErrReplayed, key, ad.Seq, s.seq)
		}
		if ad.Seq == s.seq {
			return ad, nil
		}
	}
	if _, ok := d.seen[key]; !ok && len(d.seen) >= maxSeen {
		d.pruneSeen(now)
	}
	d.seen[key] = seenAd{seq: ad.Seq, expires: ad.Expires}
	return ad, nil
}

// pruneSeen makes room in the full seen map: it drops expired entries and,
// if that frees less than a quarter, the entries expiring soonest down to
// three quarters, so a flood of valid advertisements costs one sort per
// maxSeen/4 new keys rather than a scan per key. d.mu is held.
func (d *Discovery) pruneSeen(now time.Time) {
	for k, s := range d.seen {
		if !now.Before(s.expires) {
			delete(d.seen, k)
		}
	}
	keep := maxSeen * 3 / 4
	if len(d.seen) <= keep {
		return
	}
	type kv struct {
		key     string
		expires time.Time
	}
	all := make([]kv, 0, len(d.seen))
	for k, s := range d.seen {
		all = append(all, kv{k, s.expires})
	}
	slices.SortFunc(all, func(a, b kv) int { return a.expires.Compare(b.expires) })
	for _, e := range all[:len(all)-keep] {
		delete(d.seen, e.key)
	}
}

// DiscoverResult is the outcome of Discover.
type DiscoverResult struct {
	// Ads are the verified advertisements listing the service, sorted by
	// public key; never this agent's own.
	Ads []Advertisement
	// Dropped counts providers whose advertisement failed verification
	// (forged, malformed, not canonical, misfiled, from the future, or a
	// replay older than one already seen); DropErrors says why.
	Dropped    int
	DropErrors []error
	// Stale counts providers with no current advertisement for the
	// service: expired, not found, unreachable, or no longer listing it.
	Stale int
}

// Discover finds agents offering service: providers of ServiceCID(service),
// each one's advertisement fetched from the provider itself (one round trip
// on a connection sync will reuse) or, failing that, from the DHT, then
// verified.
func (d *Discovery) Discover(ctx context.Context, service string) (DiscoverResult, error) {
	c, err := ServiceCID(service)
	if err != nil {
		return DiscoverResult{}, err
	}
	ctx, cancel := d.withTimeout(ctx)
	defer cancel()
	var (
		res  DiscoverResult
		mu   sync.Mutex
		wg   sync.WaitGroup
		sem  = make(chan struct{}, d.opts.Concurrency)
		seen = map[peer.ID]bool{d.h.ID(): true}
	)
	for p := range d.dht.FindProvidersAsync(ctx, c, 0) {
		if seen[p.ID] {
			continue
		}
		seen[p.ID] = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
			}
			ad, err := d.fetch(ctx, p)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && ad.Offers(service):
				res.Ads = append(res.Ads, ad)
			case err == nil, errors.Is(err, ErrExpired), errors.Is(err, ErrNoAdvertisement):
				res.Stale++
			default:
				res.Dropped++
				res.DropErrors = append(res.DropErrors, fmt.Errorf("discovery: provider %s: %w", p.ID, err))
			}
		}()
	}
	wg.Wait()
	slices.SortFunc(res.Ads, func(a, b Advertisement) int {
		return bytes.Compare(a.PubKey, b.PubKey)
	})
	if ctx.Err() != nil && len(res.Ads) == 0 {
		return res, fmt.Errorf("discovery: discover %s: %w", service, ctx.Err())
	}
	return res, nil
}

// fetch gets p's advertisement: first straight from p, which stores its own
// record, then from the DHT. Only verification failures of a record p
// itself served are reported as such, and ErrReplayed when p and the DHT
// both have nothing newer than an older seq than one already seen;
// anything else is ErrNoAdvertisement.
func (d *Discovery) fetch(ctx context.Context, p peer.AddrInfo) (Advertisement, error) {
	pub, err := identity.PublicFromPeerID(p.ID)
	if err != nil {
		return Advertisement{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	key := RecordKey(pub)
	if len(p.Addrs) > 0 {
		d.h.Peerstore().AddAddrs(p.ID, p.Addrs, time.Minute)
	}
	var replayed error
	rec, _, err := d.pm.GetValue(ctx, p.ID, key)
	if err == nil && rec != nil {
		ad, verr := d.verify(key, rec.GetValue())
		if !errors.Is(verr, ErrReplayed) {
			return ad, verr
		}
		// The DHT may still hold the newer record.
		replayed, err = verr, verr
	}
	d.log.Debug("discovery: direct fetch failed, asking the dht", "peer", p.ID, "err", err)
	ad, lerr := d.Lookup(ctx, pub)
	switch {
	case lerr == nil, errors.Is(lerr, ErrReplayed):
		return ad, lerr
	case replayed != nil:
		return Advertisement{}, replayed
	case errors.Is(lerr, ErrNoAdvertisement):
		return ad, lerr
	default:
		return Advertisement{}, fmt.Errorf("%w: %s: %w", ErrNoAdvertisement, hex.EncodeToString(pub), lerr)
	}
}
