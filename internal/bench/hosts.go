package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/mmogit/mmogit/internal/agent"
	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/memory"
	"github.com/mmogit/mmogit/internal/oniontransport"
	"github.com/mmogit/mmogit/internal/p2p"
	"github.com/mmogit/mmogit/internal/socks"
	"github.com/mmogit/mmogit/internal/syncproto"
)

// rawProtocol speaks the raw server's protocol (echo, sink) on a libp2p
// stream, to tell libp2p's cost from the sync protocol's.
const rawProtocol = "/mmogit-bench/raw/1.0.0"

// onionPort is the virtual port of the measured agents' onion services,
// the agent's default.
const onionPort = 7420

// peerHost is a libp2p host built from the agent's recipe (internal/p2p)
// serving the raw protocol and, given a store, memory sync exactly as the
// agent does.
type peerHost struct {
	id    *identity.Identity
	h     *p2p.Host
	store *memory.Store
	// synced receives the outcome of every inbound sync.
	synced chan syncOutcome
	ln     net.Listener // the onion service's local listener, if any
}

// syncOutcome is what an inbound sync handler reports.
type syncOutcome struct {
	stats syncproto.Stats
	err   error
}

func newIdentity() *identity.Identity {
	seed := make([]byte, 32)
	rand.Read(seed)
	return identity.FromSeed(seed)
}

// newPeerHost starts a host for cfg (Identity is set here) and registers
// the protocols.
func newPeerHost(ctx context.Context, cfg p2p.Config, store *memory.Store) (*peerHost, error) {
	if cfg.Identity == nil {
		cfg.Identity = newIdentity()
	}
	h, err := p2p.New(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	ph := &peerHost{id: cfg.Identity, h: h, store: store, synced: make(chan syncOutcome, 4)}
	h.Host().SetStreamHandler(rawProtocol, func(s network.Stream) {
		defer s.Close()
		serveRaw(s)
	})
	if store != nil {
		h.Host().SetStreamHandler(agent.SyncProtocol, ph.handleSync)
		h.Host().SetStreamHandler(agent.SyncProtocol3, ph.handleSync)
	}
	return ph, nil
}

// handleSync is the agent's inbound sync handler, reporting its outcome.
func (ph *peerHost) handleSync(s network.Stream) {
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	opts := syncOptions(ph.id, s.Conn().RemotePeer())
	opts.Accepted = true
	st, err := syncproto.Sync(ctx, s, ph.store, opts)
	if err != nil {
		s.Reset()
	}
	select {
	case ph.synced <- syncOutcome{stats: st, err: err}:
	default:
	}
}

// syncOptions are the agent's sync settings: both ends prove their key and
// it must be the key the libp2p connection authenticated.
func syncOptions(id *identity.Identity, remote peer.ID) syncproto.Options {
	o := syncproto.Options{Identity: id.Private, RequireAuth: true}
	if pub, err := identity.PublicFromPeerID(remote); err == nil {
		o.ExpectPeer, o.TransportAuthenticated = pub, true
	}
	return o
}

func (ph *peerHost) close() {
	ph.h.Close()
	if ph.ln != nil {
		ph.ln.Close()
	}
}

// newOnionHost starts a tor-only host whose onion service the serving tor
// publishes, and waits for the publication.
func (e *env) newOnionHost(ctx context.Context, store *memory.Store) (*peerHost, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	id := newIdentity()
	cfg := p2p.Config{
		Identity: id, Mode: p2p.ModeTor, OnionDialer: e.onionDialer(nil),
		Onion: &p2p.OnionListener{Listener: ln, Address: id.OnionAddress(), Port: onionPort},
	}
	ph, err := newPeerHost(ctx, cfg, store)
	if err != nil {
		ln.Close()
		return nil, err
	}
	ph.ln = ln
	if _, err := publish(ctx, e.srv, id.Private, onionPort, ln.Addr().String()); err != nil {
		ph.close()
		return nil, err
	}
	return ph, nil
}

// newTorClient starts a tor-only host without a listener that dials through
// the network's client tor; every dial reports to td if it is not nil.
// A nil id means a new identity.
func (e *env) newTorClient(ctx context.Context, id *identity.Identity, store *memory.Store, td *timedDialer) (*peerHost, error) {
	return newPeerHost(ctx, p2p.Config{Identity: id, Mode: p2p.ModeTor, OnionDialer: e.onionDialer(td)}, store)
}

// onionDialer gives every dial fresh SOCKS credentials through the client
// tor, so no connection rides on an earlier circuit.
func (e *env) onionDialer(td *timedDialer) func(peer.ID) oniontransport.ContextDialer {
	return func(peer.ID) oniontransport.ContextDialer {
		d := &socks.Dialer{ProxyAddr: e.clientSocks(), Isolation: freshIsolation(), Timeout: 60 * time.Second}
		if td == nil {
			return d
		}
		return &timedDialer{d: d, rec: td}
	}
}

// newDirectHost starts a direct-mode host listening on TCP loopback; a nil
// id means a new identity.
func newDirectHost(ctx context.Context, id *identity.Identity, store *memory.Store) (*peerHost, error) {
	return newPeerHost(ctx, p2p.Config{Identity: id, Mode: p2p.ModeDirect, ListenTCP: []string{"/ip4/127.0.0.1/tcp/0"}}, store)
}

// addrInfo is how other hosts reach ph.
func (ph *peerHost) addrInfo() peer.AddrInfo {
	return peer.AddrInfo{ID: ph.h.ID(), Addrs: ph.h.Addrs()}
}

// timedDialer records when the SOCKS part of a dial finished, so the
// libp2p handshake after it can be timed separately.
type timedDialer struct {
	d   oniontransport.ContextDialer
	rec *timedDialer // where to record; the template itself when nil

	mu   sync.Mutex // mu guards done
	done time.Time
}

func (t *timedDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := t.d.DialContext(ctx, network, addr)
	rec := t.rec
	if rec == nil {
		rec = t
	}
	rec.mu.Lock()
	rec.done = time.Now()
	rec.mu.Unlock()
	return c, err
}

// doneAt is when the last dial returned.
func (t *timedDialer) doneAt() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.done
}
