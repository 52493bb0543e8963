package agent_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/mmogit/mmogit/internal/agent"
	"github.com/mmogit/mmogit/internal/config"
	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/localapi"
	"github.com/mmogit/mmogit/internal/memory"
	"github.com/mmogit/mmogit/internal/oniontransport"
	"github.com/mmogit/mmogit/internal/p2p"
	"github.com/mmogit/mmogit/internal/socks"
	"github.com/mmogit/mmogit/internal/syncproto"
	"github.com/mmogit/mmogit/internal/testnet"
	"github.com/mmogit/mmogit/internal/trust"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testnet.CloseShared()
	os.Exit(code)
}

func newIdentity(t testing.TB) *identity.Identity {
	t.Helper()
	seed := make([]byte, 32)
	if _, err := rand.Read(seed); err != nil {
		t.Fatal(err)
	}
	return identity.FromSeed(seed)
}

// signed returns n messages by id, with distinct contents and timestamps.
func signed(id *identity.Identity, tag string, n int) []memory.Message {
	base := time.Now().Add(-time.Hour)
	out := make([]memory.Message, n)
	for i := range out {
		out[i] = memory.Sign(id.Private, fmt.Sprintf("%s message %d from %s", tag, i, id.PubHex()[:8]), base.Add(time.Duration(i)*time.Millisecond))
	}
	return out
}

// logBuffer collects the agent's log so tests can look for a record.
type logBuffer struct {
	mu  sync.Mutex // mu guards buf
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) count(substr string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.buf.String(), substr)
}

// testAgent is an in-process agent running in its own config dir.
type testAgent struct {
	*agent.Agent
	id    *identity.Identity
	dir   string
	api   *localapi.Client
	log   *logBuffer
	addrs []ma.Multiaddr // where clients dial it
	own   []memory.Message
	stop  func() // cancels Run and waits for it; also run at cleanup
}

type agentSetup struct {
	cfg      config.Config
	torrc    []string
	messages int
	idle     time.Duration
	// before, if set, runs on the config dir before the agent is created.
	before func(dir string)
	// id is the agent's identity (nil: a new one).
	id *identity.Identity
	// dialTimeout and retryWait: see agent.SetDialTimeout, SetRetryWait.
	dialTimeout time.Duration
	retryWait   func(time.Duration) time.Duration
}

func directConfig() config.Config {
	cfg := config.Default()
	cfg.Transport = config.Direct
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Services = nil // no DHT advertising loop: nothing to advertise to
	return cfg
}

// startAgent preloads the agent's store, runs it until the test ends and
// waits until it is ready (direct: listening; tor: onion published).
func startAgent(t testing.TB, s agentSetup) *testAgent {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	id := s.id
	if id == nil {
		id = newIdentity(t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ta := &testAgent{id: id, dir: dir, api: &localapi.Client{Dir: dir}, log: &logBuffer{}}
	if s.messages > 0 {
		st, err := memory.Open(filepath.Join(dir, "messages"))
		if err != nil {
			t.Fatal(err)
		}
		ta.own = signed(id, "agent", s.messages)
		if _, err := st.Add(ctx, ta.own); err != nil {
			t.Fatal(err)
		}
	}
	if s.before != nil {
		s.before(dir)
	}
	logger := slog.New(slog.NewTextHandler(ta.log, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, err := agent.New(agent.Options{ConfigDir: dir, Config: s.cfg, Identity: id, TestnetTorrc: s.torrc, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if s.idle > 0 {
		agent.SetSyncIdle(a, s.idle)
	}
	if s.dialTimeout > 0 {
		agent.SetDialTimeout(a, s.dialTimeout)
	}
	if s.retryWait != nil {
		agent.SetRetryWait(a, s.retryWait)
	}
	ta.Agent = a
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	ta.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("agent run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("agent did not stop within 30 s")
			}
		})
	}
	t.Cleanup(ta.stop)
	wait := 30 * time.Second
	if s.cfg.Transport != config.Direct {
		wait = 4 * time.Minute
	}
	deadline := time.Now().Add(wait)
	for {
		st, err := ta.api.Status(ctx)
		if err == nil && st.Ready && len(st.Listen) > 0 {
			for _, l := range st.Listen {
				ta.addrs = append(ta.addrs, ma.StringCast(l))
			}
			return ta
		}
		select {
		case err := <-done:
			t.Fatalf("agent exited while starting: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent not ready after %v: %+v %v\n%s", wait, st, err, ta.log.buf.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (ta *testAgent) peerID() peer.ID { return ta.id.PeerID() }

// client is a peer syncing with the agent: its own identity, libp2p host
// and store.
type client struct {
	id    *identity.Identity
	host  *p2p.Host
	store *memory.Store
	own   []memory.Message
}

// onionDialer dials through the private network's client tor, one SOCKS
// identity (circuit) per peer.
func onionDialer(via string) func(peer.ID) oniontransport.ContextDialer {
	base := &socks.Dialer{ProxyAddr: via, Timeout: 20 * time.Second}
	return func(p peer.ID) oniontransport.ContextDialer { return base.ForPeer(p.String()) }
}

// newClient builds a client; socksAddr "" makes a direct-mode host,
// otherwise a tor-only one dialing through that SOCKS port. The host is
// closed by the test's cleanup (closing twice is harmless).
func newClient(t testing.TB, messages int, socksAddr string) *client {
	t.Helper()
	c := &client{id: newIdentity(t)}
	cfg := p2p.Config{Identity: c.id, Mode: p2p.ModeDirect}
	if socksAddr != "" {
		cfg.Mode, cfg.OnionDialer = p2p.ModeTor, onionDialer(socksAddr)
	}
	h, err := p2p.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.host = h
	t.Cleanup(func() { h.Close() })
	if c.store, err = memory.Open(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if messages > 0 {
		c.own = signed(c.id, "client", messages)
		if _, err := c.store.Add(context.Background(), c.own); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// connect dials the agent, retrying what tor reports as transient (a
// descriptor not yet fetched, a failed introduction) until ctx ends.
func (c *client) connect(ctx context.Context, ta *testAgent) error {
	for {
		err := c.host.Connect(ctx, peer.AddrInfo{ID: ta.peerID(), Addrs: ta.addrs})
		// A stalled dial (tor sitting on a rendezvous) is retried too.
		transient := socks.RetryAfter(err) > 0 || errors.Is(err, context.DeadlineExceeded)
		if err == nil || !transient || ctx.Err() != nil {
			return err
		}
		if sw, ok := c.host.Host().Network().(*swarm.Swarm); ok {
			sw.Backoff().Clear(ta.peerID())
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// sync connects and runs one authenticated sync session with the agent.
func (c *client) sync(ctx context.Context, ta *testAgent) (syncproto.Stats, error) {
	if err := c.connect(ctx, ta); err != nil {
		return syncproto.Stats{}, fmt.Errorf("connect: %w", err)
	}
	s, err := c.host.Host().NewStream(ctx, ta.peerID(), agent.SyncProtocol)
	if err != nil {
		return syncproto.Stats{}, fmt.Errorf("open stream: %w", err)
	}
	st, err := syncproto.Sync(ctx, s, c.store, syncproto.Options{
		Identity: c.id.Private, RequireAuth: true, ExpectPeer: ta.id.Public,
	})
	if err != nil {
		s.Reset()
		return st, err
	}
	return st, s.Close()
}

// checkStore asserts that st holds exactly want (by ID) plus at most the
// IDs in maybe, all valid and none twice.
func checkStore(t testing.TB, name string, st *memory.Store, want []memory.Message, maybe map[string]bool) {
	t.Helper()
	all, err := st.All(context.Background())
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	seen := map[string]bool{}
	for _, e := range all {
		if !e.Valid {
			t.Errorf("%s: invalid entry %s: %v", name, e.Path, e.Err)
		}
		if seen[e.ID] {
			t.Errorf("%s: %s stored twice", name, e.ID)
		}
		seen[e.ID] = true
	}
	for _, m := range want {
		if !seen[m.ID()] {
			t.Errorf("%s: missing %s", name, m.ID())
			return
		}
		delete(seen, m.ID())
	}
	for id := range seen {
		if !maybe[id] {
			t.Errorf("%s: unexpected message %s", name, id)
			return
		}
	}
}

// heapSampler records the largest HeapInuse seen while it runs.
type heapSampler struct {
	max  atomic.Uint64
	stop chan struct{}
	done chan struct{}
}

func sampleHeap() *heapSampler {
	h := &heapSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			h.sample()
			select {
			case <-h.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return h
}

func (h *heapSampler) sample() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	for {
		old := h.max.Load()
		if ms.HeapInuse <= old || h.max.CompareAndSwap(old, ms.HeapInuse) {
			return
		}
	}
}

// Stop ends sampling and returns the peak in bytes.
func (h *heapSampler) Stop() uint64 {
	close(h.stop)
	<-h.done
	return h.max.Load()
}

func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

const mib = 1 << 20

// settledGoroutines lets goroutines started by the setup finish and
// returns the count.
func settledGoroutines() int {
	prev := runtime.NumGoroutine()
	for range 20 {
		time.Sleep(100 * time.Millisecond)
		n := runtime.NumGoroutine()
		if n == prev {
			return n
		}
		prev = n
	}
	return prev
}

// awaitGoroutines polls (up to wait) until at most baseline+margin
// goroutines run, and fails with every goroutine's stack if they do not.
// It returns the count once it has settled.
func awaitGoroutines(t testing.TB, baseline, margin int, wait time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		if n := runtime.NumGoroutine(); n <= baseline+margin {
			return settledGoroutines() // what is left once exits finish, for the log
		}
		if n := runtime.NumGoroutine(); time.Now().After(deadline) {
			buf := make([]byte, 8<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutine leak: %d running, baseline %d (+%d allowed)\n%s", n, baseline, margin, buf)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// isReset reports whether err says the remote reset the stream.
func isReset(err error) bool {
	return errors.Is(err, network.ErrReset) || err != nil && strings.Contains(err.Error(), "reset")
}

// grant gives id roles in ta's trust list; the running agent applies it at
// the next session.
func (ta *testAgent) grant(t testing.TB, id *identity.Identity, read, write bool) {
	t.Helper()
	if _, err := trust.Set(ta.dir, id.Public, read, write, "", "test"); err != nil {
		t.Fatal(err)
	}
}
