package syncproto

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/memory"
)

func key(b byte) ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = b
	}
	return ed25519.NewKeyFromSeed(seed)
}

// newStore opens a real git store holding n messages by author k, written in
// one Add so that big stores stay cheap to build.
func newStore(t testing.TB, k ed25519.PrivateKey, n int, prefix string) *memory.Store {
	t.Helper()
	s, err := memory.Open(filepath.Join(t.TempDir(), "messages"))
	if err != nil {
		t.Fatal(err)
	}
	if n > 0 {
		var msgs []memory.Message
		base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		for i := range n {
			msgs = append(msgs, memory.Sign(k, fmt.Sprintf("%s memory %d", prefix, i), base.Add(time.Duration(i)*time.Second)))
		}
		if res, err := s.Add(context.Background(), msgs); err != nil || res.Added != n {
			t.Fatalf("Add = %+v, %v", res, err)
		}
	}
	return s
}

type transport func(t testing.TB) (net.Conn, net.Conn)

func pipePair(t testing.TB) (net.Conn, net.Conn) {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-acc
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

var transports = []struct {
	name string
	pair transport
}{{"pipe", pipePair}, {"tcp", tcpPair}}

type result struct {
	st  Stats
	err error
}

// syncBoth runs Sync on both ends at once, as dialer and listener would.
func syncBoth(t testing.TB, pair transport, a, b Syncer, oa, ob Options) (Stats, Stats) {
	t.Helper()
	ca, cb := pair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rb := make(chan result, 1)
	go func() {
		st, err := Sync(ctx, cb, b, ob)
		rb <- result{st, err}
	}()
	sa, erra := Sync(ctx, ca, a, oa)
	r := <-rb
	if erra != nil || r.err != nil {
		t.Fatalf("sync: a: %v; b: %v", erra, r.err)
	}
	return sa, r.st
}

func inventoryOf(t testing.TB, s Syncer) map[string][]string {
	t.Helper()
	inv, err := s.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func count(inv map[string][]string) int {
	n := 0
	for _, ids := range inv {
		n += len(ids)
	}
	return n
}

func fsck(t testing.TB, s *memory.Store) {
	t.Helper()
	out, err := exec.Command("git", "-C", s.Dir(), "fsck", "--full", "--strict", "--no-progress").CombinedOutput()
	if err != nil || strings.Contains(string(out), "error") || strings.Contains(string(out), "missing") {
		t.Fatalf("git fsck: %v\n%s", err, out)
	}
}

func TestSyncBothWaysIncremental(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			ka, kb := key(1), key(2)
			a, b := newStore(t, ka, 5, "a"), newStore(t, kb, 3, "b")
			// A shared message both already hold is not transferred.
			shared := memory.Sign(ka, "shared", time.Unix(100, 0))
			a.Add(context.Background(), []memory.Message{shared})
			b.Add(context.Background(), []memory.Message{shared})

			sa, sb := syncBoth(t, tr.pair, a, b, Options{Identity: ka}, Options{Identity: kb})
			if sa.Added != 3 || sb.Added != 5 || sa.Rejected+sb.Rejected != 0 {
				t.Fatalf("stats a=%+v b=%+v", sa, sb)
			}
			if !sa.PeerAuthenticated || sa.PeerKey != fmt.Sprintf("%x", kb.Public()) || !sb.PeerAuthenticated {
				t.Fatalf("auth: a=%+v b=%+v", sa, sb)
			}
			if sa.BytesSent != sb.BytesReceived || sb.BytesSent != sa.BytesReceived {
				t.Fatalf("byte counts disagree: a=%+v b=%+v", sa, sb)
			}
			ia, ib := inventoryOf(t, a), inventoryOf(t, b)
			if fmt.Sprint(ia) != fmt.Sprint(ib) || count(ia) != 9 {
				t.Fatalf("not converged:\n%v\n%v", ia, ib)
			}
			fsck(t, a)
			fsck(t, b)

			// Nothing new: only hello (with the summary), auth and bye move.
			sa, sb = syncBoth(t, tr.pair, a, b, Options{Identity: ka}, Options{Identity: kb})
			if sa.Added+sb.Added+sa.MessagesSent+sb.MessagesSent != 0 || sa.FramesSent != 3 {
				t.Fatalf("second sync moved data: a=%+v b=%+v", sa, sb)
			}
			if sa.BytesSent > 4000 || sa.BytesReceived > 4000 {
				t.Fatalf("second sync: %d bytes sent, %d received; want tiny", sa.BytesSent, sa.BytesReceived)
			}
			t.Logf("incremental sync: %d bytes each way", sa.BytesSent)
		})
	}
}

func TestThreeStoresConverge(t *testing.T) {
	stores := []*memory.Store{newStore(t, key(1), 4, "x"), newStore(t, key(2), 6, "y"), newStore(t, key(3), 2, "z")}
	for _, p := range [][2]int{{0, 1}, {1, 2}, {2, 0}} {
		syncBoth(t, tcpPair, stores[p[0]], stores[p[1]], Options{}, Options{})
	}
	want := fmt.Sprint(inventoryOf(t, stores[0]))
	for i, s := range stores {
		inv := inventoryOf(t, s)
		if count(inv) != 12 || fmt.Sprint(inv) != want {
			t.Fatalf("store %d has %d messages: %v", i, count(inv), inv)
		}
	}
}

func TestPing(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			ca, cb := tr.pair(t)
			s := newStore(t, key(1), 1, "p")
			rb := make(chan result, 1)
			go func() {
				st, err := Sync(context.Background(), cb, s, Options{Identity: key(1)})
				rb <- result{st, err}
			}()
			rtt, err := Ping(context.Background(), ca)
			if err != nil || rtt <= 0 {
				t.Fatalf("Ping = %v, %v", rtt, err)
			}
			r := <-rb
			if r.err != nil || r.st.PingsAnswered != 1 {
				t.Fatalf("serving side: %+v, %v", r.st, r.err)
			}
		})
	}
}

func TestAuthPolicy(t *testing.T) {
	a, b := newStore(t, key(1), 1, "a"), newStore(t, key(2), 1, "b")
	tests := []struct {
		name   string
		oa, ob Options
	}{
		{"anonymous peer refused", Options{RequireAuth: true}, Options{}},
		{"wrong peer refused", Options{Identity: key(1), ExpectPeer: key(3).Public().(ed25519.PublicKey)}, Options{Identity: key(2)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ca, cb := pipePair(t)
			go Sync(context.Background(), cb, b, tc.ob)
			_, err := Sync(context.Background(), ca, a, tc.oa)
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("Sync = %v, want ErrProtocol", err)
			}
		})
	}
}

// TestConcurrentSyncs syncs several peers with one hub store at once.
func TestConcurrentSyncs(t *testing.T) {
	hub := newStore(t, key(1), 20, "hub")
	const peers = 6
	var wg sync.WaitGroup
	stores := make([]*memory.Store, peers)
	for i := range peers {
		stores[i] = newStore(t, key(byte(10+i)), 5, "peer")
	}
	errs := make(chan error, 2*peers)
	for i := range peers {
		wg.Go(func() {
			ca, cb := tcpPair(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var inner sync.WaitGroup
			inner.Go(func() {
				if _, err := Sync(ctx, cb, hub, Options{}); err != nil {
					errs <- fmt.Errorf("hub side %d: %w", i, err)
				}
			})
			if _, err := Sync(ctx, ca, stores[i], Options{}); err != nil {
				errs <- fmt.Errorf("peer %d: %w", i, err)
			}
			inner.Wait()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := count(inventoryOf(t, hub)); n != 20+5*peers {
		t.Fatalf("hub has %d messages, want %d", n, 20+5*peers)
	}
	for i, s := range stores {
		if n := count(inventoryOf(t, s)); n < 25 {
			t.Fatalf("peer %d has %d messages", i, n)
		}
	}
	fsck(t, hub)
}

// cutConn closes the connection after limit bytes have been read, as a
// peer vanishing mid-transfer would.
type cutConn struct {
	net.Conn
	mu    sync.Mutex
	left  int
	other net.Conn
}

func (c *cutConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.left <= 0 {
		c.Conn.Close()
		c.other.Close()
		return 0, io.ErrUnexpectedEOF
	}
	if len(p) > c.left {
		p = p[:c.left]
	}
	n, err := c.Conn.Read(p)
	c.left -= n
	return n, err
}

func TestVanishMidSyncThenResync(t *testing.T) {
	a := newStore(t, key(1), 1200, "big")
	b := newStore(t, key(2), 1, "small")
	ca, cb := pipePair(t)
	cut := &cutConn{Conn: cb, left: 250_000, other: ca}
	ctx := context.Background()
	done := make(chan error, 1)
	go func() { _, err := Sync(ctx, ca, a, Options{IdleTimeout: 5 * time.Second}); done <- err }()
	st, err := Sync(ctx, cut, b, Options{IdleTimeout: 5 * time.Second})
	if err == nil {
		t.Fatal("sync over a cut connection succeeded")
	}
	<-done
	t.Logf("cut after %d bytes: %v (stored %d)", st.BytesReceived, err, st.Added)
	if st.Added >= 1200 {
		t.Fatalf("cut came too late: %+v", st)
	}
	fsck(t, b)
	es, err := b.All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if !e.Valid {
			t.Fatalf("invalid entry after cut: %+v", e)
		}
	}
	sa, sb := syncBoth(t, pipePair, a, b, Options{}, Options{})
	if n := count(inventoryOf(t, b)); n != 1201 || sb.Added != 1200-st.Added || sa.Added != 1 {
		t.Fatalf("after resync b has %d; a=%+v b=%+v", n, sa, sb)
	}
}

func BenchmarkSyncTCP2000(b *testing.B) {
	src := newStore(b, key(1), 2000, "bench")
	inv := inventoryOf(b, src)
	msgs, _ := src.Get(context.Background(), inv[fmt.Sprintf("%x", key(1).Public())])
	size := 0
	for _, m := range msgs {
		size += len(m.Content) + 300
	}
	b.SetBytes(int64(size))
	for b.Loop() {
		b.StopTimer()
		dst := newStore(b, key(2), 0, "")
		b.StartTimer()
		_, sb := syncBoth(b, tcpPair, src, dst, Options{}, Options{})
		if sb.Added != 2000 {
			b.Fatalf("added %d", sb.Added)
		}
	}
}
