package agent_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/mmogit/mmogit/internal/agent"
	"github.com/mmogit/mmogit/internal/config"
	"github.com/mmogit/mmogit/internal/memory"
	"github.com/mmogit/mmogit/internal/syncproto"
	"github.com/mmogit/mmogit/internal/testnet"
)

// abuseIdle is the agent's sync idle timeout in these tests (30 s in
// production), so stalled peers are cut off quickly.
const abuseIdle = 2 * time.Second

func frame(t testing.TB, typ string, payload any) []byte {
	t.Helper()
	m, err := syncproto.NewMessage(typ, payload)
	if err != nil {
		t.Fatal(err)
	}
	b, err := syncproto.AppendFrame(nil, m, syncproto.MaxFrame)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func header(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// openSync connects c to the agent and opens a raw sync stream.
func openSync(t testing.TB, ctx context.Context, c *client, ta *testAgent) network.Stream {
	t.Helper()
	if err := c.connect(ctx, ta); err != nil {
		t.Fatal(err)
	}
	s, err := c.host.Host().NewStream(ctx, ta.peerID(), agent.SyncProtocol)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// awaitReset reads s until the agent ends it and returns the read error
// (nil if the agent closed it cleanly instead of resetting it).
func awaitReset(t testing.TB, s network.Stream, wait time.Duration) error {
	t.Helper()
	s.SetReadDeadline(time.Now().Add(wait))
	_, err := io.Copy(io.Discard, s)
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("agent did not end the stream within %v", wait)
	}
	return err
}

// legitSync checks the agent still serves an honest peer.
func legitSync(t testing.TB, ctx context.Context, ta *testAgent) *client {
	t.Helper()
	c := newClient(t, 2, "")
	st, err := c.sync(ctx, ta)
	if err != nil {
		t.Fatalf("legitimate sync after abuse: %v", err)
	}
	if st.Added < len(ta.own) {
		t.Fatalf("legitimate peer got %d messages, want at least %d", st.Added, len(ta.own))
	}
	return c
}

func TestAbuse(t *testing.T) {
	ta := startAgent(t, agentSetup{cfg: directConfig(), messages: 20, idle: abuseIdle})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t.Run("garbage", func(t *testing.T) { testGarbage(t, ctx, ta) })
	t.Run("slowloris", func(t *testing.T) { testSlowloris(t, ctx, ta) })
	t.Run("forged message after hello", func(t *testing.T) { testForgedAfterHello(t, ctx, ta, "") })
}

// TestForgedOverOnion: the same misbehaving peer, reaching a tor-only agent
// through its onion service on the private Tor network.
func TestForgedOverOnion(t *testing.T) {
	nw := testnet.Shared(t)
	cfg := config.Default() // tor only
	cfg.Services = nil
	ta := startAgent(t, agentSetup{cfg: cfg, torrc: nw.Info().ClientTorrc, messages: 5})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	testForgedAfterHello(t, ctx, ta, nw.SocksAddr())
}

// forgingStore is a misbehaving peer's store: next to its honest messages
// it offers one whose content was edited after signing, as if it were
// valid, and serves it when asked.
type forgingStore struct {
	*memory.Store
	forged memory.Message
}

func (s *forgingStore) Inventory(ctx context.Context) (map[string][]string, error) {
	inv, err := s.Store.Inventory(ctx)
	if err != nil {
		return nil, err
	}
	ids := append(append([]string{}, inv[s.forged.Author]...), s.forged.ID())
	sort.Strings(ids)
	inv[s.forged.Author] = ids
	return inv, nil
}

func (s *forgingStore) Get(ctx context.Context, ids []string) ([]memory.Message, error) {
	msgs, err := s.Store.Get(ctx, ids)
	if err == nil && slices.Contains(ids, s.forged.ID()) {
		msgs = append(msgs, s.forged)
	}
	return msgs, err
}

// testForgedAfterHello: a peer that completes hello and auth properly and
// then, among honest messages, serves one whose signature does not match:
// the agent verifies every message, rejects and counts the forged one,
// stores the honest ones and nothing else.
func testForgedAfterHello(t *testing.T, ctx context.Context, ta *testAgent, socksAddr string) {
	c := newClient(t, 3, socksAddr)
	ta.grant(t, c.id, false, true) // only a writer's messages are even fetched
	forged := memory.Sign(c.id.Private, "signed content", time.Now())
	forged.Content = "edited after signing"
	if forged.Verify() == nil {
		t.Fatal("the forged message verifies")
	}
	rejected := ta.log.count("inbound sync rejected messages")
	if err := c.connect(ctx, ta); err != nil {
		t.Fatal(err)
	}
	s, err := c.host.Host().NewStream(ctx, ta.peerID(), agent.SyncProtocol)
	if err != nil {
		t.Fatal(err)
	}
	st, err := syncproto.Sync(ctx, s, &forgingStore{Store: c.store, forged: forged}, syncproto.Options{
		Identity: c.id.Private, RequireAuth: true, ExpectPeer: ta.id.Public,
	})
	if err != nil {
		t.Fatalf("session with a forging peer: %v", err)
	}
	s.Close()
	if st.MessagesSent != len(c.own)+1 {
		t.Errorf("client served %d messages, want %d (the honest ones and the forged one)", st.MessagesSent, len(c.own)+1)
	}
	deadline := time.Now().Add(5 * time.Second)
	for ta.log.count("inbound sync rejected messages") == rejected {
		if time.Now().After(deadline) {
			t.Fatalf("agent did not report the rejected message:\n%s", ta.log.buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := ta.log.count("rejected=1 "); n < 1 {
		t.Errorf("agent did not count exactly one rejected message:\n%s", ta.log.buf.String())
	}
	all, err := agent.StoreOf(ta.Agent).All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, e := range all {
		got[e.ID] = true
		if !e.Valid {
			t.Errorf("agent stored an invalid message: %+v", e.Message)
		}
		if e.Message.Content == forged.Content {
			t.Errorf("agent stored the forged message")
		}
	}
	for _, m := range c.own {
		if !got[m.ID()] {
			t.Errorf("agent lacks the honest message %q sent with the forged one", m.Content)
		}
	}
}

// testGarbage: whatever a peer sends that is not the protocol, the agent
// logs it, resets that stream, stores nothing and keeps serving others.
func testGarbage(t *testing.T, ctx context.Context, ta *testAgent) {
	impostor := newIdentity(t)
	tests := []struct {
		name string
		send func(c *client) []byte
	}{
		{"random bytes", func(*client) []byte { return randomBytes(t, 64<<10) }},
		{"oversized header", func(*client) []byte { return append(header(0xffffffff), randomBytes(t, 1024)...) }},
		{"header over max frame", func(*client) []byte { return header(syncproto.MaxFrame + 1) }},
		{"body not json", func(*client) []byte { return append(header(11), "hello world"...) }},
		{"unknown message type", func(*client) []byte { return frame(t, "Gimme", map[string]string{"all": "of it"}) }},
		{"hello with another key", func(*client) []byte {
			return frame(t, syncproto.TypeHello, map[string]any{"pubkey": impostor.PubHex(), "nonce": hex.EncodeToString(randomBytes(t, 32)), "version": 1})
		}},
		{"anonymous hello", func(*client) []byte {
			return frame(t, syncproto.TypeHello, map[string]any{"pubkey": "", "nonce": hex.EncodeToString(randomBytes(t, 32)), "version": 1})
		}},
		// Before any hello: refused as a protocol violation. A forged
		// message within a proper session is testForgedAfterHello.
		{"memory response before hello", func(c *client) []byte {
			m := memory.Sign(c.id.Private, "forged", time.Now())
			m.Content = "edited after signing"
			return frame(t, "MemoryResponse", map[string]any{"messages": []memory.Message{m}})
		}},
	}
	before, err := agent.StoreOf(ta.Agent).All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	baseline := settledGoroutines()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, 0, "")
			failed := ta.log.count("inbound sync failed")
			s := openSync(t, ctx, c, ta)
			s.Write(tc.send(c)) // may fail once the agent has reset the stream
			if err := awaitReset(t, s, 20*time.Second); !isReset(err) {
				t.Errorf("agent ended the stream with %v, want a reset", err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for ta.log.count("inbound sync failed") == failed {
				if time.Now().After(deadline) {
					t.Fatal("agent did not log the failed sync")
				}
				time.Sleep(20 * time.Millisecond)
			}
			c.host.Close()
		})
	}
	after, err := agent.StoreOf(ta.Agent).All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Errorf("agent store went from %d to %d entries after garbage", len(before), len(after))
	}
	c := legitSync(t, ctx, ta)
	c.host.Close()
	n := awaitGoroutines(t, baseline, goroutineMargin, 10*time.Second)
	t.Logf("goroutines: %d before, %d after", baseline, n)
}

// testSlowloris: peers that open a sync stream and then send nothing, or
// too little to ever finish a frame, are cut off at the idle timeout and
// leave nothing behind.
func testSlowloris(t *testing.T, ctx context.Context, ta *testAgent) {
	const perVariant = 8
	hello := func(c *client) []byte {
		return frame(t, syncproto.TypeHello, map[string]any{"pubkey": c.id.PubHex(), "nonce": hex.EncodeToString(randomBytes(t, 32)), "version": 1})
	}
	tests := []struct {
		name string
		// first is sent at once; then drip is sent one byte at a time,
		// each well within the idle timeout.
		first func(c *client) []byte
		drip  []byte
	}{
		{"silent", nil, nil},
		{"partial header", func(*client) []byte { return []byte{0, 0} }, nil},
		{"hello then silent", hello, nil},
		{"drip one frame", nil, append(header(1000), bytes.Repeat([]byte{'{'}, 1000)...)},
		{"large header then silent", func(*client) []byte { return header(syncproto.MaxFrame) }, nil},
	}
	baseline := settledGoroutines()
	hs := sampleHeap()
	var wg sync.WaitGroup
	var clients []*client
	var mu sync.Mutex // mu guards errs
	var errs []error
	for _, tc := range tests {
		for range perVariant {
			c := newClient(t, 0, "")
			clients = append(clients, c)
			s := openSync(t, ctx, c, ta)
			wg.Add(1)
			go func() {
				defer wg.Done()
				if tc.first != nil {
					s.Write(tc.first(c))
				}
				go func() {
					for _, b := range tc.drip {
						if _, err := s.Write([]byte{b}); err != nil {
							return
						}
						time.Sleep(abuseIdle / 4)
					}
				}()
				err := awaitReset(t, s, 10*abuseIdle)
				if !isReset(err) {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	peak := hs.Stop()
	for _, err := range errs {
		t.Errorf("stalled stream ended with %v, want a reset", err)
	}
	if got := ta.log.count("peer stalled"); got < len(clients) {
		t.Errorf("agent logged %d stalled peers, want at least %d", got, len(clients))
	}
	c := legitSync(t, ctx, ta)
	clients = append(clients, c)
	for _, c := range clients {
		c.host.Close()
	}
	n := awaitGoroutines(t, baseline, goroutineMargin, 10*time.Second)
	t.Logf("%d stalled streams reset; heap peak %d MiB; goroutines %d before, %d after", len(clients)-1, peak/mib, baseline, n)
	if peak > maxHeapInuse {
		t.Errorf("heap in use peaked at %d MiB, bound %d MiB", peak/mib, maxHeapInuse/mib)
	}
}

// TestAbuseConnFlood: hundreds of identities connect as fast as they can
// and hold their connections. The resource manager's limits refuse the
// excess, and a peer that was already connected keeps syncing meanwhile.
func TestAbuseConnFlood(t *testing.T) {
	const flooders = 300
	ta := startAgent(t, agentSetup{cfg: directConfig(), messages: 20, idle: abuseIdle})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	baseline := settledGoroutines()

	// The legitimate peer has a connection before the flood begins.
	legit := newClient(t, 2, "")
	if err := legit.connect(ctx, ta); err != nil {
		t.Fatal(err)
	}
	flood := make([]*client, flooders)
	for i := range flood {
		flood[i] = newClient(t, 0, "")
	}
	hs := sampleHeap()
	start := make(chan struct{})
	errs := make([]error, flooders)
	var wg sync.WaitGroup
	for i, c := range flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = c.host.Host().Connect(ctx, peer.AddrInfo{ID: ta.peerID(), Addrs: ta.addrs})
		}()
	}
	close(start)
	// Sync while the flood is under way: dials are in flight or the
	// agent's connection slots are full.
	st, syncErr := legit.sync(ctx, ta)
	wg.Wait()
	connected := ta.connectedPeers(ctx, t)
	// And once more with every flooder that got in still connected.
	_, syncErr2 := legit.sync(ctx, ta)

	refused := 0
	for _, err := range errs {
		if err != nil {
			refused++
		}
	}
	peak := hs.Stop()
	if syncErr != nil {
		t.Errorf("legitimate sync during the flood: %v", syncErr)
	} else if st.Added < len(ta.own) {
		t.Errorf("legitimate peer got %d messages, want %d", st.Added, len(ta.own))
	}
	if syncErr2 != nil {
		t.Errorf("legitimate sync with the agent's slots full: %v", syncErr2)
	}
	if refused == 0 {
		t.Errorf("all %d flood connections accepted; the resource manager limits did not hold", flooders)
	}
	if connected > 128+1 {
		t.Errorf("agent holds %d connections, over its inbound limit", connected)
	}

	// A newcomer during a held flood: the slots are taken, so it may be
	// refused; that is the price of a hard limit (see the report).
	newcomer := newClient(t, 1, "")
	_, newcomerErr := newcomer.sync(ctx, ta)

	for _, c := range flood {
		c.host.Close()
	}
	newcomer.host.Close()
	// Once the flood is gone, newcomers get in again.
	late := legitSync(t, ctx, ta)
	late.host.Close()
	legit.host.Close()
	n := awaitGoroutines(t, baseline, goroutineMargin, 15*time.Second)
	t.Logf("flood: %d connections tried, %d refused, agent held %d; heap peak %d MiB; newcomer during held flood: %v; goroutines %d before, %d after",
		flooders, refused, connected, peak/mib, newcomerErr, baseline, n)
}

// connectedPeers asks the agent (through its local API) how many peers it
// is connected to.
func (ta *testAgent) connectedPeers(ctx context.Context, t testing.TB) int {
	t.Helper()
	st, err := ta.api.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st.PeersConnected
}
