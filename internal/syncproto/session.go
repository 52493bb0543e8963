package syncproto

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/mmogit/mmogit/internal/memory"
)

// Syncer is the store a session reads from and writes to. *memory.Store
// satisfies it. Add must verify every message before storing it.
type Syncer interface {
	// Inventory returns the sorted IDs of the valid messages, by author.
	Inventory(ctx context.Context) (map[string][]string, error)
	// Get returns the messages with the given IDs that it has.
	Get(ctx context.Context, ids []string) ([]memory.Message, error)
	// Add verifies and stores messages received from the peer.
	Add(ctx context.Context, msgs []memory.Message) (memory.AddResult, error)
}

var _ Syncer = (*memory.Store)(nil)

// Holder is implemented by a Syncer whose Inventory shows the peer less
// than the store holds (a view filtered by who the peer is): Held is every
// ID held, so the session never requests one of them.
type Holder interface {
	Held(ctx context.Context) (map[string]bool, error)
}

// Version is the protocol version this side speaks (Hello's "version").
// Version 3 sends the summary with a set sketch inside Hello and pushes a
// small difference as soon as the summaries cross; version 2 reconciles
// differing authors by buckets; a peer whose Hello says 1 gets the version
// 1 exchange (whole ID lists), see the package doc.
const Version = 3

// Protocol limits; see the package documentation.
const (
	DefaultIdle      = 30 * time.Second
	maxIDsPerRequest = 512
	maxOutstanding   = 4
	responseBudget   = 4 << 20   // the most one response carries
	minBudget        = 64 << 10  // the least a version 3 request may ask for
	firstBudget      = 256 << 10 // before any throughput is measured
	batchTime        = 2 * time.Second
	pushMax          = 8     // a difference up to this many IDs each way is pushed
	idsPerFrame      = 1000  // 1,000 × 67 bytes ≈ 67 KB: the peer requests after the first, not after 670 KB
	authorsPerFrame  = 20000 // 20,000 × ~180 bytes ≈ 3.6 MB
	maxRejectErrors  = 100
)

// Options configures a session. The zero value syncs anonymously with the
// default limits.
type Options struct {
	// Identity, if set, is announced in Hello and proven with Auth.
	Identity ed25519.PrivateKey
	// RequireAuth refuses a peer that does not prove a key.
	RequireAuth bool
	// ExpectPeer, if set, refuses a peer that proves any other key.
	ExpectPeer ed25519.PublicKey
	// IdleTimeout cuts off a peer when no byte moves either way for this
	// long (default 30 s): waiting for an answer, or a frame that stops
	// arriving, or a peer that stops reading. A large frame on a slow link
	// that keeps moving never times out.
	IdleTimeout time.Duration
	// TransportAuthenticated says the channel is already bound to
	// ExpectPeer (libp2p's Noise handshake proved the peer's key), so the
	// session acts on the peer's summary (sends ID lists, pushes memories)
	// as soon as it arrives instead of after the peer's Auth. The Auth is
	// still required and checked. Ignored without ExpectPeer.
	TransportAuthenticated bool
	// Accepted says the peer opened the stream (we are the listener):
	// our first frame answers its opening, so round trips are counted
	// from the peer's first byte, as the dialer waits them.
	Accepted bool
	// MaxFrame caps frame bodies (default and maximum MaxFrame).
	MaxFrame int
	// Logger receives debug records; nil is silent.
	Logger *slog.Logger
	// Access, if set, chooses the store the session uses once the peer
	// has proven its key (nil for an anonymous peer), and whether to
	// refuse what it offers: what a peer may see can depend on who it is.
	// Our summary then waits for the peer's Auth, so nothing is revealed
	// to a peer that only claims a key. The store passed to Sync is not
	// used. Where the transport already authenticated the peer (libp2p),
	// choose the store before Sync instead and save the wait.
	Access func(peer ed25519.PublicKey) (store Syncer, refuseInbound bool, err error)
	// RefuseInbound stores nothing the peer has: the session still
	// reconciles (so the peer learns nothing it may not) but requests
	// nothing and counts what it would have requested as Refused. The
	// agent sets it for a peer without the write role.
	RefuseInbound bool
	// Progress, if set, is called from the session's goroutine each time
	// messages arrive: received so far and the number requested so far
	// (which grows as the peer's id lists arrive). It must not block.
	Progress func(received, wanted int)

	// version, if set, is the protocol version this side speaks instead
	// of Version: tests use it to play a version 1 peer.
	version int
}

// Stats describes one session.
type Stats struct {
	PeerKey           string // hex; "" if the peer was anonymous
	PeerAuthenticated bool
	BytesSent         int64
	BytesReceived     int64
	FramesSent        int
	FramesReceived    int
	MessagesSent      int // messages served to the peer
	MessagesReceived  int // messages the peer sent us, valid or not
	Added             int // new messages stored
	Duplicates        int
	Rejected          int     // forged, malformed or unrequested: not stored
	Refused           int     // not stored because of who sent them (no write role, quota)
	RejectErrors      []error // why, for the first 100
	PingsAnswered     int
	Version           int // the protocol version the session ran
	// RoundTrips is the longest causal chain of frames the session
	// waited through, in round trips (half the deepest Hop received):
	// 1 means one exchange after the stream opened. Zero with a peer
	// older than version 3, which sends no hops.
	RoundTrips float64
}

type authorSummary struct {
	Count  int    `json:"count"`
	Digest string `json:"digest"`
}

type helloMsg struct {
	PubKey  string `json:"pubkey"`
	Nonce   string `json:"nonce"`
	Version int    `json:"version"`
	// Summary is the whole summary, in version 3 when it fits one part
	// and the store does not depend on the peer's proof.
	Summary *summaryMsg `json:"summary,omitempty"`
}
type authMsg struct {
	Signature string `json:"signature"`
}
type summaryMsg struct {
	Authors map[string]authorSummary `json:"authors"`
	More    bool                     `json:"more"`
	Sketch  string                   `json:"sketch,omitempty"` // version 3, last part: see sketch.go
}
type idsMsg struct {
	Author string   `json:"author"`
	Prefix string   `json:"prefix,omitempty"` // the node; "" (all the author's IDs) in version 1
	IDs    []string `json:"ids"`
	More   bool     `json:"more"`
}
type requestMsg struct {
	Filter any      `json:"filter,omitempty"`
	IDs    []string `json:"ids"`
	// MaxBytes (version 3) sizes the response to about batchTime of the
	// throughput the requester measures; the responder clamps it.
	MaxBytes int `json:"max_bytes,omitempty"`
}
type pushMsg struct {
	Messages []memory.Message `json:"messages"`
}
type responseMsg struct {
	Messages []memory.Message `json:"messages"`
	Deferred []string         `json:"deferred,omitempty"`
}
type pingMsg struct {
	Nonce uint64 `json:"nonce"`
}
type byeMsg struct {
	Reason string `json:"reason,omitempty"`
}

// session is one run of the protocol. Only the main loop touches it.
type session struct {
	ctx   context.Context
	c     *conn
	store Syncer
	opts  Options
	stats Stats
	log   *slog.Logger

	myNonce []byte
	myPub   []byte
	inv     map[string][]string // our inventory at the start
	have    map[string]bool     // our IDs at the start

	peerHello   *helloMsg
	version     int // agreed: the lower of ours and the peer's
	peerNonce   []byte
	peerPub     []byte
	needAuth    bool // peer named a key and owes an Auth
	peerSummary map[string]authorSummary
	summaryDone bool
	// Reconciliation state. Each entry is a node that differs and whose
	// peer half we await; their number is bounded by our own inventory
	// (see reconcile.go), not by what the peer claims.
	expectBuckets map[nodeKey]bucketSum // expanded nodes → the peer's claim
	expectIDs     map[nodeKey]*idStream // leaves → the peer's list so far

	want        []string   // IDs to request
	requests    [][]string // outstanding requests, oldest first
	requested   map[string]bool
	sentDone    bool
	gotDone     bool
	sentBye     bool
	gotBye      bool
	summarySent bool

	// Version 3.
	mySketch, peerSketch *sketch
	embedded             bool // our summary travelled in our Hello
	crossed              bool // both summaries are in and acted on
	pushIDs              []string
	expectPush           map[string]bool
	rate                 float64   // response bytes per second, measured
	lastResp             time.Time // when the last response (or first request) moved
	inN                  int       // size of the frame being handled

	// The storing goroutine (store1).
	addCh       chan []memory.Message
	addRes      chan addResult
	pendingAdds int
}

// Sync runs one session over rw against store and returns what moved. Both
// ends call it. It does not close rw; on an error return with an rw that has
// no deadlines, the reader goroutine lingers until rw is closed.
func Sync(ctx context.Context, rw io.ReadWriter, store Syncer, opts Options) (Stats, error) {
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdle
	}
	if opts.MaxFrame <= 0 || opts.MaxFrame > MaxFrame {
		opts.MaxFrame = MaxFrame
	}
	s := &session{
		ctx: ctx, store: store, opts: opts,
		c:             newConn(ctx, rw, opts.IdleTimeout, opts.MaxFrame),
		expectPush:    map[string]bool{},
		log:           opts.Logger,
		requested:     map[string]bool{},
		expectBuckets: map[nodeKey]bucketSum{},
		expectIDs:     map[nodeKey]*idStream{},
	}
	if s.opts.version == 0 {
		s.opts.version = Version
	}
	s.c.ours = s.opts.version
	if s.opts.Accepted {
		s.c.hop = 1
	}
	if s.opts.ExpectPeer == nil {
		s.opts.TransportAuthenticated = false
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	defer s.c.stop()
	err := s.run()
	s.stats.BytesSent, s.stats.FramesSent = s.c.sent, s.c.framesS
	s.stats.Version = s.version
	if s.version >= 3 {
		s.stats.RoundTrips = float64(s.c.hop) / 2
	}
	return s.stats, err
}

func (s *session) run() error {
	box := &inbox{limit: 6 * MaxFrame, notify: make(chan struct{}, 1)}
	readerDone := make(chan struct{})
	go s.c.readLoop(box, readerDone)
	defer func() {
		if s.c.dl != nil { // unblock and reap the reader
			s.c.abort()
			<-readerDone
		}
	}()

	s.myNonce = make([]byte, 32)
	rand.Read(s.myNonce)
	hello := helloMsg{Nonce: hex.EncodeToString(s.myNonce), Version: s.opts.version}
	if s.opts.Identity != nil {
		s.myPub = s.opts.Identity.Public().(ed25519.PublicKey)
		hello.PubKey = hex.EncodeToString(s.myPub)
	}
	if s.opts.version >= 3 && s.opts.Access == nil {
		// The store does not depend on the peer's proof, so the summary
		// goes out at once, inside Hello: it crosses the peer's in the
		// first half round trip.
		if err := s.loadInventory(); err != nil {
			return err
		}
		if len(s.inv) <= authorsPerFrame {
			hello.Summary = &summaryMsg{Authors: s.summaryPart(slices.Sorted(maps.Keys(s.inv))), Sketch: s.mySketch.encode()}
			s.embedded = true
		}
	}
	if err := s.send(TypeHello, hello); err != nil {
		return err
	}
	defer s.drainAdds()
	idle := time.NewTimer(s.opts.IdleTimeout)
	defer idle.Stop()
	for {
		select {
		case r := <-s.addRes:
			if finished, err := s.stored(r); err != nil || finished {
				return err
			}
		default:
		}
		in, ok := box.pop()
		if !ok {
			select {
			case <-box.notify:
				continue
			case r := <-s.addRes:
				if finished, err := s.stored(r); err != nil || finished {
					return err
				}
				continue
			case <-idle.C:
				// Bytes of a large frame still arriving (or of ours still
				// leaving) count as progress.
				if d := s.c.sinceProgress(); d < s.opts.IdleTimeout {
					idle.Reset(s.opts.IdleTimeout - d)
					continue
				}
				return fmt.Errorf("%w: peer stalled: nothing received for %v while waiting for %s", ErrTimeout, s.opts.IdleTimeout, s.waitingFor())
			case <-s.ctx.Done():
				return fmt.Errorf("syncproto: sync: %w", s.ctx.Err())
			}
		}
		idle.Reset(s.opts.IdleTimeout)
		if in.err != nil {
			return s.readError(in.err)
		}
		s.stats.BytesReceived += int64(in.n)
		s.stats.FramesReceived++
		s.c.hop = max(s.c.hop, in.m.Hop)
		s.inN = in.n
		finished, err := s.handle(in.m)
		if err != nil {
			return err
		}
		if finished {
			return nil
		}
	}
}

// stored applies a stored batch; the end may now be due.
func (s *session) stored(r addResult) (finished bool, err error) {
	if err := s.applyAdd(r); err != nil {
		return false, err
	}
	if err := s.pump(); err != nil {
		return false, err
	}
	return s.sentBye && s.gotBye, nil
}

func (s *session) readError(err error) error {
	switch {
	case s.ctx.Err() != nil:
		return fmt.Errorf("syncproto: sync: %w", s.ctx.Err())
	case isTimeout(err):
		return fmt.Errorf("%w: peer stalled: nothing received for %v while waiting for %s", ErrTimeout, s.opts.IdleTimeout, s.waitingFor())
	case errors.Is(err, ErrFrameTooLarge), errors.Is(err, ErrProtocol):
		return err
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("syncproto: peer closed the connection while waiting for %s: %w", s.waitingFor(), err)
	}
	return fmt.Errorf("syncproto: read: %w", err)
}

func (s *session) waitingFor() string {
	switch {
	case s.peerHello == nil:
		return "hello"
	case s.needAuth:
		return "auth"
	case !s.summaryDone:
		return "summary"
	case len(s.expectBuckets) > 0:
		return "bucket digests"
	case len(s.expectIDs) > 0:
		return "id lists"
	case len(s.requests) > 0:
		return "memory response"
	case len(s.expectPush) > 0 && !s.gotBye:
		return "pushed memories"
	case s.version < 3 && !s.gotDone:
		return "peer's requests"
	}
	return "bye"
}

func (s *session) send(typ string, payload any) error {
	m, err := NewMessage(typ, payload)
	if err != nil {
		return err
	}
	return s.c.write(s.ctx, m)
}

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, args...)...)
}

// handle processes one frame; finished reports a clean end of the session.
func (s *session) handle(m NetworkMessage) (finished bool, err error) {
	s.log.Debug("syncproto: received", "type", m.Type)
	switch m.Type {
	case TypePing:
		var p pingMsg
		if err := decodePayload(m, &p); err != nil {
			return false, err
		}
		s.stats.PingsAnswered++
		return false, s.send(TypePong, p)
	case TypePong:
		return false, nil
	case TypeBye:
		if s.peerHello == nil { // a ping-only peer
			s.gotBye = true
			return true, nil
		}
		if s.version >= 3 {
			return s.onBye3(m)
		}
		s.gotBye = true
		if !s.sentBye {
			var b byeMsg
			decodePayload(m, &b)
			return false, protoErr("peer said bye (%q) before the sync finished, while we waited for %s", b.Reason, s.waitingFor())
		}
		return true, nil
	case TypeHello:
		if err := s.onHello(m); err != nil {
			return false, err
		}
		if err := s.pump(); err != nil {
			return false, err
		}
		return s.sentBye && s.gotBye, nil
	}
	if s.peerHello == nil {
		return false, protoErr("%s before hello", m.Type)
	}
	if s.needAuth && m.Type != TypeAuth {
		return false, protoErr("%s before the auth the peer's hello promised", m.Type)
	}
	switch m.Type {
	case TypeAuth:
		err = s.onAuth(m)
	case TypeSummary:
		err = s.onSummary(m)
	case TypeIDs:
		err = s.onIDs(m)
	case TypeBuckets:
		if s.version < 2 {
			return false, protoErr("buckets from a version %d peer", s.version)
		}
		err = s.onBuckets(m)
	case TypeMemoryRequest:
		err = s.onRequest(m)
	case TypeMemoryResponse:
		err = s.onResponse(m)
	case TypePush:
		if s.version < 3 {
			return false, protoErr("push from a version %d peer", s.version)
		}
		err = s.onPush(m)
	case TypeDone:
		if s.version >= 3 {
			return false, protoErr("done from a version %d peer (bye ends version 3)", s.version)
		}
		if s.gotDone {
			return false, protoErr("second done")
		}
		s.gotDone = true
	default:
		return false, protoErr("unexpected message type %q", m.Type)
	}
	if err != nil {
		return false, err
	}
	if err := s.pump(); err != nil {
		return false, err
	}
	return s.sentBye && s.gotBye, nil
}

func authPayload(signerNonce, otherNonce, signerPub []byte) []byte {
	// Signer signs: domain || other's nonce || own nonce || own pubkey.
	b := []byte("mmogit-sync-auth-v1\x00")
	b = append(b, otherNonce...)
	b = append(b, signerNonce...)
	return append(b, signerPub...)
}

func (s *session) onHello(m NetworkMessage) error {
	if s.peerHello != nil {
		return protoErr("second hello")
	}
	var h helloMsg
	if err := decodePayload(m, &h); err != nil {
		return err
	}
	if h.Version < 1 {
		return protoErr("peer speaks sync version %d; this side speaks 1 and %d", h.Version, s.opts.version)
	}
	// A version 1 peer ignores our version and runs the version 1
	// exchange, so we run it too; a newer peer does the same for us.
	s.version = min(h.Version, s.opts.version)
	if s.version < Version {
		s.log.Debug("syncproto: peer speaks an older protocol", "version", h.Version)
	}
	nonce, err := hex.DecodeString(h.Nonce)
	if err != nil || len(nonce) != 32 {
		return protoErr("hello nonce must be 64 hex characters")
	}
	if h.PubKey != "" {
		pub, err := hex.DecodeString(h.PubKey)
		if err != nil || len(pub) != ed25519.PublicKeySize {
			return protoErr("hello pubkey must be 64 hex characters")
		}
		// Refuse a peer naming the wrong key at once, not after the idle
		// timeout (its Auth would fail anyway).
		if s.opts.ExpectPeer != nil && !s.opts.ExpectPeer.Equal(ed25519.PublicKey(pub)) {
			return protoErr("peer says it is %.16s…, expected %.16s…", h.PubKey, hex.EncodeToString(s.opts.ExpectPeer))
		}
		s.peerPub, s.needAuth = pub, true
		s.stats.PeerKey = hex.EncodeToString(pub)
	} else if s.opts.RequireAuth || s.opts.ExpectPeer != nil {
		return protoErr("peer did not identify itself and authentication is required")
	}
	s.peerHello, s.peerNonce = &h, nonce
	if s.opts.Identity != nil {
		sig := ed25519.Sign(s.opts.Identity, authPayload(s.myNonce, s.peerNonce, s.myPub))
		if err := s.send(TypeAuth, authMsg{Signature: hex.EncodeToString(sig)}); err != nil {
			return err
		}
	}
	if s.version >= 3 && h.Summary != nil {
		// Kept until we may act on it (see cross).
		if h.Summary.More {
			return protoErr("summary in hello must be whole")
		}
		if err := s.takeSummary(*h.Summary); err != nil {
			return err
		}
	}
	if s.opts.Access != nil {
		if s.needAuth {
			return nil // the summary follows the peer's proof (onAuth)
		}
		if err := s.choose(nil); err != nil {
			return err
		}
	}
	if s.embedded && s.version >= 3 {
		s.summarySent = true
		return s.tryCross()
	}
	return s.sendSummary()
}

// choose applies Options.Access for the peer's proven key.
func (s *session) choose(peer ed25519.PublicKey) error {
	st, refuse, err := s.opts.Access(peer)
	if err == nil && st == nil {
		err = errors.New("no store")
	}
	if err != nil {
		return fmt.Errorf("syncproto: access for peer %x: %w", []byte(peer), err)
	}
	s.store, s.opts.RefuseInbound = st, refuse
	return nil
}

func (s *session) onAuth(m NetworkMessage) error {
	if !s.needAuth {
		return protoErr("auth without a pubkey in hello")
	}
	var a authMsg
	if err := decodePayload(m, &a); err != nil {
		return err
	}
	sig, err := hex.DecodeString(a.Signature)
	if err != nil || !ed25519.Verify(s.peerPub, authPayload(s.peerNonce, s.myNonce, s.peerPub), sig) {
		return protoErr("peer failed to prove key %.16s…", hex.EncodeToString(s.peerPub))
	}
	if s.opts.ExpectPeer != nil && !s.opts.ExpectPeer.Equal(ed25519.PublicKey(s.peerPub)) {
		return protoErr("peer is %x, expected %x", s.peerPub, []byte(s.opts.ExpectPeer))
	}
	s.needAuth, s.stats.PeerAuthenticated = false, true
	if s.opts.Access != nil {
		if err := s.choose(ed25519.PublicKey(s.peerPub)); err != nil {
			return err
		}
		return s.sendSummary()
	}
	return s.tryCross()
}

// loadInventory reads what the peer may see (s.inv), what we hold
// (s.have) and, in version 3, our sketch.
func (s *session) loadInventory() error {
	inv, err := s.store.Inventory(s.ctx)
	if err != nil {
		return fmt.Errorf("syncproto: inventory: %w", err)
	}
	s.inv, s.have = inv, map[string]bool{}
	authors := make([]string, 0, len(inv))
	for a, ids := range inv {
		authors = append(authors, a)
		if !slices.IsSorted(ids) { // the digests and the bucket split need sorted IDs
			ids = slices.Sorted(slices.Values(ids))
			inv[a] = ids
		}
		for _, id := range ids {
			s.have[id] = true
		}
	}
	sort.Strings(authors)
	if h, ok := s.store.(Holder); ok {
		// The summary shows what the peer may see; what we request is
		// decided by everything we hold, so nothing held is fetched again.
		held, err := h.Held(s.ctx)
		if err != nil {
			return fmt.Errorf("syncproto: held messages: %w", err)
		}
		maps.Copy(s.have, held)
	}
	if s.opts.version >= 3 {
		s.mySketch = newSketch(inv)
	}
	return nil
}

func (s *session) summaryPart(authors []string) map[string]authorSummary {
	part := map[string]authorSummary{}
	for _, a := range authors {
		part[a] = authorSummary{Count: len(s.inv[a]), Digest: digest(s.inv[a])}
	}
	return part
}

func (s *session) sendSummary() error {
	if s.inv == nil || s.opts.Access != nil {
		if err := s.loadInventory(); err != nil {
			return err
		}
	}
	authors := slices.Sorted(maps.Keys(s.inv))
	for {
		n := min(len(authors), authorsPerFrame)
		part := summaryMsg{Authors: s.summaryPart(authors[:n])}
		authors = authors[n:]
		part.More = len(authors) > 0
		if !part.More && s.version >= 3 {
			part.Sketch = s.mySketch.encode()
		}
		if err := s.send(TypeSummary, part); err != nil {
			return err
		}
		if !part.More {
			s.summarySent = true
			return s.tryCross()
		}
	}
}

func validAuthor(a string) bool {
	b, err := hex.DecodeString(a)
	return err == nil && len(b) == ed25519.PublicKeySize && hex.EncodeToString(b) == a
}

func (s *session) onSummary(m NetworkMessage) error {
	var p summaryMsg
	if err := decodePayload(m, &p); err != nil {
		return err
	}
	if err := s.takeSummary(p); err != nil {
		return err
	}
	return s.tryCross()
}

// takeSummary records one part of the peer's summary.
func (s *session) takeSummary(p summaryMsg) error {
	if s.summaryDone {
		return protoErr("summary after the last summary part")
	}
	if s.peerSummary == nil {
		s.peerSummary = map[string]authorSummary{}
	}
	for a, sum := range p.Authors {
		if !validAuthor(a) || sum.Count < 0 {
			return protoErr("bad summary entry for author %.16q", a)
		}
		s.peerSummary[a] = sum
	}
	if p.More {
		return nil
	}
	s.summaryDone = true
	if p.Sketch != "" && s.version >= 3 {
		sk, err := decodeSketch(p.Sketch)
		if err != nil {
			return protoErr("summary: %v", err)
		}
		s.peerSketch = sk
	}
	return nil
}

// canServe: we may reveal more than our summary (ID lists, memories)
// once the peer has proven the key it named, or the transport did.
func (s *session) canServe() bool {
	return s.peerHello != nil && (!s.needAuth || s.opts.TransportAuthenticated)
}

// tryCross acts on the two summaries once both are in and we may serve.
func (s *session) tryCross() error {
	if s.crossed || !s.summarySent || !s.summaryDone || !s.canServe() {
		return nil
	}
	s.crossed = true
	if s.mySketch != nil && s.peerSketch != nil {
		mine, theirs, ok := s.mySketch.diff(s.peerSketch)
		if ok && s.countsAgree(mine, theirs) {
			s.log.Debug("syncproto: sketch decoded", "mine", len(mine), "theirs", len(theirs))
			if len(mine) <= pushMax && len(theirs) <= pushMax {
				// Both sides decide this from the same numbers: each
				// pushes what the other lacks, nobody requests.
				s.pushIDs = mine
				for _, id := range theirs {
					s.expectPush[id] = true
				}
				return nil
			}
			for _, id := range theirs {
				if !s.have[id] && !s.requested[id] {
					s.want = append(s.want, id)
					s.requested[id] = true
				}
			}
			return nil
		}
	}
	// D: authors whose summaries differ. Reconcile each from its root.
	var diff []string
	for a, sum := range s.peerSummary {
		if mine := s.inv[a]; len(mine) != sum.Count || digest(mine) != sum.Digest {
			diff = append(diff, a)
		}
	}
	for a := range s.inv {
		if _, ok := s.peerSummary[a]; !ok {
			diff = append(diff, a)
		}
	}
	sort.Strings(diff)
	for _, a := range diff {
		peer := bucketSum{Count: s.peerSummary[a].Count, Digest: s.peerSummary[a].Digest}
		if err := s.reconcile(nodeKey{author: a}, s.inv[a], peer); err != nil {
			return err
		}
	}
	return nil
}

// countsAgree checks a decoded difference against the summaries' counts.
func (s *session) countsAgree(mine, theirs []string) bool {
	ours, peers := 0, 0
	for _, ids := range s.inv {
		ours += len(ids)
	}
	for _, sum := range s.peerSummary {
		peers += sum.Count
	}
	return peers == ours-len(mine)+len(theirs)
}

// onBye3 handles a version 3 Bye: the peer asks for nothing more (it
// still answers our requests) and has sent everything it owed us.
func (s *session) onBye3(m NetworkMessage) (bool, error) {
	if s.gotBye {
		return false, protoErr("second bye")
	}
	if !s.summaryDone || len(s.expectBuckets) > 0 || len(s.expectIDs) > 0 {
		var b byeMsg
		decodePayload(m, &b)
		return false, protoErr("peer said bye (%q) while we waited for %s", b.Reason, s.waitingFor())
	}
	s.gotBye = true
	if len(s.expectPush) > 0 {
		// The peer no longer has them; the next sync finds out.
		s.log.Debug("syncproto: peer did not push all it lacked", "missing", len(s.expectPush))
		clear(s.expectPush)
	}
	if err := s.pump(); err != nil {
		return false, err
	}
	return s.sentBye, nil
}

// onPush stores memories the peer pushed because its sketch showed we
// lack them. Only IDs the sketches named are taken.
func (s *session) onPush(m NetworkMessage) error {
	if !s.crossed {
		return protoErr("push before the summaries crossed")
	}
	var p pushMsg
	if err := decodePayload(m, &p); err != nil {
		return err
	}
	s.stats.MessagesReceived += len(p.Messages)
	var ok []memory.Message
	for _, msg := range p.Messages {
		id := msg.ID()
		if !s.expectPush[id] {
			s.reject(fmt.Errorf("syncproto: pushed message %.16s… by %.8s the sketches did not name (forged or altered in transit)", id, msg.Author))
			continue
		}
		delete(s.expectPush, id)
		ok = append(ok, msg)
	}
	if s.opts.RefuseInbound {
		s.stats.Refused += len(ok)
		return nil
	}
	if len(ok) == 0 {
		return nil
	}
	// A push is a few small messages: stored at once, so the Bye that
	// confirms it leaves now.
	s.pendingAdds++
	res, err := s.store.Add(s.ctx, ok)
	return s.applyAdd(addResult{res, err})
}

// store1 hands received messages to the storing goroutine, so the
// network keeps moving while the store verifies and writes a batch (git
// writes cost about as much as an onion circuit's transfer). At most
// addQueue batches wait; past that the session waits for the store.
func (s *session) store1(ok []memory.Message) error {
	if len(ok) == 0 {
		return nil
	}
	if s.addCh == nil {
		s.addCh = make(chan []memory.Message, addQueue)
		s.addRes = make(chan addResult, addQueue+1)
		st, ctx := s.store, s.ctx
		go func() {
			for b := range s.addCh {
				res, err := st.Add(ctx, b)
				s.addRes <- addResult{res, err}
			}
		}()
	}
	for {
		select {
		case s.addCh <- ok:
			s.pendingAdds++
			return nil
		case r := <-s.addRes:
			if err := s.applyAdd(r); err != nil {
				return err
			}
		}
	}
}

const addQueue = 2

type addResult struct {
	res memory.AddResult
	err error
}

// drainAdds waits for every batch handed to the store, so what was
// received is stored (and counted) before Sync returns, even on an error.
func (s *session) drainAdds() {
	if s.addCh == nil {
		return
	}
	close(s.addCh)
	for s.pendingAdds > 0 {
		s.applyAdd(<-s.addRes)
	}
}

func (s *session) applyAdd(r addResult) error {
	s.pendingAdds--
	res, err := r.res, r.err
	if err != nil {
		return fmt.Errorf("syncproto: store received messages: %w", err)
	}
	s.stats.Added += res.Added
	s.stats.Duplicates += res.Duplicate
	for _, e := range res.Errors {
		s.reject(e)
	}
	s.stats.Rejected += res.Rejected - len(res.Errors)
	s.stats.Refused += res.Refused
	return nil
}

// push sends what the sketches showed the peer lacks.
func (s *session) push() error {
	ids := s.pushIDs
	s.pushIDs = nil
	msgs, err := s.store.Get(s.ctx, ids)
	if err != nil {
		return fmt.Errorf("syncproto: read messages to push: %w", err)
	}
	for len(msgs) > 0 {
		n, size := 0, 0
		for n < len(msgs) && (n == 0 || size+msgSize(msgs[n]) <= responseBudget) {
			size += msgSize(msgs[n])
			n++
		}
		if err := s.send(TypePush, pushMsg{Messages: msgs[:n]}); err != nil {
			return err
		}
		s.stats.MessagesSent += n
		msgs = msgs[n:]
	}
	return nil
}

// msgSize bounds a message's encoded size. Content is at most
// memory.MaxContentBytes, so one message always fits a frame even when
// escaping inflates it.
func msgSize(m memory.Message) int { return len(m.Content)*6/5 + 300 }

// budget is how many response bytes to ask for: about batchTime of the
// measured throughput, so a response neither idles a fast link nor takes
// minutes on a slow one.
func (s *session) budget() int {
	if s.rate == 0 {
		return firstBudget
	}
	return int(min(max(s.rate*batchTime.Seconds(), minBudget), responseBudget))
}

// pump sends requests while the window allows, then Done and Bye when due.
func (s *session) pump() error {
	if s.opts.RefuseInbound && len(s.want) > 0 {
		s.stats.Refused += len(s.want)
		s.want = s.want[:0]
	}
	if len(s.pushIDs) > 0 && s.crossed {
		if err := s.push(); err != nil {
			return err
		}
	}
	for len(s.requests) < maxOutstanding && len(s.want) > 0 {
		n := min(len(s.want), maxIDsPerRequest)
		batch := append([]string(nil), s.want[:n]...)
		s.want = s.want[n:]
		req := requestMsg{IDs: batch}
		if s.version >= 3 {
			req.MaxBytes = s.budget()
		}
		if err := s.send(TypeMemoryRequest, req); err != nil {
			return err
		}
		if len(s.requests) == 0 {
			s.lastResp = time.Now()
		}
		s.requests = append(s.requests, batch)
	}
	if s.version >= 3 {
		// Bye says we ask for nothing more and hold all we were owed,
		// pushes included, so when either side returns both have stored
		// what moved.
		if !s.sentBye && s.crossed && len(s.expectBuckets) == 0 && len(s.expectIDs) == 0 && len(s.want) == 0 && len(s.requests) == 0 && len(s.pushIDs) == 0 && len(s.expectPush) == 0 && s.pendingAdds == 0 {
			if err := s.send(TypeBye, byeMsg{Reason: "sync complete"}); err != nil {
				return err
			}
			s.sentBye = true
		}
		return nil
	}
	if !s.sentDone && s.summarySent && s.summaryDone && !s.needAuth && len(s.expectBuckets) == 0 && len(s.expectIDs) == 0 && len(s.want) == 0 && len(s.requests) == 0 && s.pendingAdds == 0 {
		if err := s.send(TypeDone, struct{}{}); err != nil {
			return err
		}
		s.sentDone = true
	}
	if s.sentDone && s.gotDone && !s.sentBye {
		if err := s.send(TypeBye, byeMsg{Reason: "sync complete"}); err != nil {
			return err
		}
		s.sentBye = true
	}
	return nil
}

func (s *session) onRequest(m NetworkMessage) error {
	if s.gotDone || s.version >= 3 && s.gotBye {
		return protoErr("request after done")
	}
	var p requestMsg
	if err := decodePayload(m, &p); err != nil {
		return err
	}
	if len(p.IDs) > maxIDsPerRequest {
		return protoErr("request for %d ids, limit %d", len(p.IDs), maxIDsPerRequest)
	}
	msgs, err := s.store.Get(s.ctx, p.IDs)
	if err != nil {
		return fmt.Errorf("syncproto: read requested messages: %w", err)
	}
	budget := responseBudget
	if p.MaxBytes > 0 {
		budget = min(max(p.MaxBytes, minBudget), responseBudget)
	}
	var resp responseMsg
	size := 0
	for i, msg := range msgs {
		n := msgSize(msg)
		if i > 0 && size+n > budget {
			for _, rest := range msgs[i:] {
				resp.Deferred = append(resp.Deferred, rest.ID())
			}
			break
		}
		size += n
		resp.Messages = append(resp.Messages, msg)
	}
	if resp.Messages == nil {
		resp.Messages = []memory.Message{}
	}
	s.stats.MessagesSent += len(resp.Messages)
	return s.send(TypeMemoryResponse, resp)
}

func (s *session) onResponse(m NetworkMessage) error {
	if len(s.requests) == 0 {
		return protoErr("memory response without a request")
	}
	var p responseMsg
	if err := decodePayload(m, &p); err != nil {
		return err
	}
	asked := map[string]bool{}
	for _, id := range s.requests[0] {
		asked[id] = true
	}
	s.requests = s.requests[1:]
	// Throughput: this response's bytes over the time since the previous
	// one (the link was busy with it all along, requests being pipelined).
	now := time.Now()
	if d := now.Sub(s.lastResp).Seconds(); d > 0 {
		r := float64(s.inN) / d
		if s.rate == 0 {
			s.rate = r
		} else {
			s.rate = (s.rate + r) / 2
		}
	}
	s.lastResp = now
	if len(p.Deferred) > 0 && len(p.Messages) == 0 {
		return protoErr("memory response defers everything")
	}
	s.stats.MessagesReceived += len(p.Messages)
	if s.opts.Progress != nil {
		s.opts.Progress(s.stats.MessagesReceived, len(s.requested))
	}
	var ok []memory.Message
	for _, msg := range p.Messages {
		id := msg.ID()
		if !asked[id] {
			s.reject(fmt.Errorf("syncproto: unrequested message %.16s… by %.8s (forged or altered in transit)", id, msg.Author))
			continue
		}
		delete(asked, id)
		ok = append(ok, msg)
	}
	for _, id := range p.Deferred {
		if asked[id] {
			delete(asked, id)
			s.want = append(s.want, id)
		}
	}
	return s.store1(ok)
}

func (s *session) reject(err error) {
	s.stats.Rejected++
	if len(s.stats.RejectErrors) < maxRejectErrors {
		s.stats.RejectErrors = append(s.stats.RejectErrors, err)
	}
}
