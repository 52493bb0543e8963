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
// Version 2 reconciles differing authors by buckets; a peer whose Hello says
// 1 gets the version 1 exchange (whole ID lists), see the package doc.
const Version = 2

// Protocol limits; see the package documentation.
const (
	DefaultIdle      = 30 * time.Second
	maxIDsPerRequest = 512
	maxOutstanding   = 4
	responseBudget   = 4 << 20
	idsPerFrame      = 50000 // 50,000 × 67 bytes ≈ 3.4 MB
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
	// IdleTimeout cuts off a peer that sends nothing awaited, or does not
	// read, for this long (default 30 s).
	IdleTimeout time.Duration
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
}

type authorSummary struct {
	Count  int    `json:"count"`
	Digest string `json:"digest"`
}

type helloMsg struct {
	PubKey  string `json:"pubkey"`
	Nonce   string `json:"nonce"`
	Version int    `json:"version"`
}
type authMsg struct {
	Signature string `json:"signature"`
}
type summaryMsg struct {
	Authors map[string]authorSummary `json:"authors"`
	More    bool                     `json:"more"`
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
		log:           opts.Logger,
		requested:     map[string]bool{},
		expectBuckets: map[nodeKey]bucketSum{},
		expectIDs:     map[nodeKey]*idStream{},
	}
	if s.opts.version == 0 {
		s.opts.version = Version
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	defer s.c.stop()
	err := s.run()
	s.stats.BytesSent, s.stats.FramesSent = s.c.sent, s.c.framesS
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
	if err := s.send(TypeHello, hello); err != nil {
		return err
	}
	idle := time.NewTimer(s.opts.IdleTimeout)
	defer idle.Stop()
	for {
		in, ok := box.pop()
		if !ok {
			select {
			case <-box.notify:
				continue
			case <-idle.C:
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
		finished, err := s.handle(in.m)
		if err != nil {
			return err
		}
		if finished {
			return nil
		}
	}
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
	case !s.gotDone:
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
		s.gotBye = true
		if s.peerHello == nil { // a ping-only peer
			return true, nil
		}
		if !s.sentBye {
			var b byeMsg
			decodePayload(m, &b)
			return false, protoErr("peer said bye (%q) before the sync finished, while we waited for %s", b.Reason, s.waitingFor())
		}
		return true, nil
	case TypeHello:
		return false, s.onHello(m)
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
	case TypeDone:
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
	if s.opts.Access != nil {
		if s.needAuth {
			return nil // the summary follows the peer's proof (onAuth)
		}
		if err := s.choose(nil); err != nil {
			return err
		}
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
	return nil
}

func (s *session) sendSummary() error {
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
	for {
		part := summaryMsg{Authors: map[string]authorSummary{}}
		n := min(len(authors), authorsPerFrame)
		for _, a := range authors[:n] {
			part.Authors[a] = authorSummary{Count: len(inv[a]), Digest: digest(inv[a])}
		}
		authors = authors[n:]
		part.More = len(authors) > 0
		if err := s.send(TypeSummary, part); err != nil {
			return err
		}
		if !part.More {
			s.summarySent = true
			return nil
		}
	}
}

func validAuthor(a string) bool {
	b, err := hex.DecodeString(a)
	return err == nil && len(b) == ed25519.PublicKeySize && hex.EncodeToString(b) == a
}

func (s *session) onSummary(m NetworkMessage) error {
	if s.summaryDone {
		return protoErr("summary after the last summary part")
	}
	var p summaryMsg
	if err := decodePayload(m, &p); err != nil {
		return err
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

// pump sends requests while the window allows, then Done and Bye when due.
func (s *session) pump() error {
	if s.opts.RefuseInbound && len(s.want) > 0 {
		s.stats.Refused += len(s.want)
		s.want = s.want[:0]
	}
	for len(s.requests) < maxOutstanding && len(s.want) > 0 {
		n := min(len(s.want), maxIDsPerRequest)
		batch := append([]string(nil), s.want[:n]...)
		s.want = s.want[n:]
		if err := s.send(TypeMemoryRequest, requestMsg{IDs: batch}); err != nil {
			return err
		}
		s.requests = append(s.requests, batch)
	}
	if !s.sentDone && s.summarySent && s.summaryDone && !s.needAuth && len(s.expectBuckets) == 0 && len(s.expectIDs) == 0 && len(s.want) == 0 && len(s.requests) == 0 {
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
	if s.gotDone {
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
	var resp responseMsg
	size := 0
	for i, msg := range msgs {
		// Content is at most memory.MaxContentBytes, so one message always
		// fits a frame even when escaping inflates it.
		n := len(msg.Content)*6/5 + 300
		if i > 0 && size+n > responseBudget {
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
	if len(ok) > 0 {
		res, err := s.store.Add(s.ctx, ok)
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
	}
	return nil
}

func (s *session) reject(err error) {
	s.stats.Rejected++
	if len(s.stats.RejectErrors) < maxRejectErrors {
		s.stats.RejectErrors = append(s.stats.RejectErrors, err)
	}
}
