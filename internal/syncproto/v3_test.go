package syncproto

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/memory"
)

func fakeIDs(r *rand.Rand, n int) []string {
	out := make([]string, n)
	for i := range out {
		var b [8]byte
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		s := sha256.Sum256(b[:])
		out[i] = hex.EncodeToString(s[:])
	}
	slices.Sort(out)
	return out
}

// TestSketchDiff: peeling gives exactly the symmetric difference when it is
// small, and reports failure (never a wrong answer) when it is large.
func TestSketchDiff(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	shared := fakeIDs(r, 2000)
	for _, tc := range []struct{ mine, theirs int }{{0, 0}, {1, 0}, {0, 1}, {1, 1}, {8, 8}, {3, 11}} {
		t.Run(fmt.Sprintf("%d/%d", tc.mine, tc.theirs), func(t *testing.T) {
			onlyA, onlyB := fakeIDs(r, tc.mine), fakeIDs(r, tc.theirs)
			a := newSketch(map[string][]string{"x": append(slices.Clone(shared), onlyA...)})
			b := newSketch(map[string][]string{"x": append(slices.Clone(shared), onlyB...)})
			b2, err := decodeSketch(b.encode())
			if err != nil {
				t.Fatal(err)
			}
			mine, theirs, ok := a.diff(b2)
			if !ok || fmt.Sprint(mine) != fmt.Sprint(onlyA) && len(onlyA) > 0 || fmt.Sprint(theirs) != fmt.Sprint(onlyB) && len(onlyB) > 0 || len(mine) != len(onlyA) || len(theirs) != len(onlyB) {
				t.Fatalf("diff = %v %v %v, want %v %v", mine, theirs, ok, onlyA, onlyB)
			}
		})
	}
	a := newSketch(map[string][]string{"x": shared})
	b := newSketch(map[string][]string{"x": shared[:1800]})
	if mine, theirs, ok := a.diff(b); ok {
		t.Fatalf("200 differences peeled: %d %d", len(mine), len(theirs))
	}
	if _, err := decodeSketch("AAAA"); err == nil {
		t.Fatal("short sketch accepted")
	}
}

// TestPushOneRoundTrip: one new memory each side out of 10,000 shared. The
// sketches name the difference, each side pushes its new memory with no
// request. Both start at once here: the pushes cross at 1 round trip and
// the Byes confirming them at 1.5 (2 when the sessions must wait for each
// other's Auth before acting).
func TestPushOneRoundTrip(t *testing.T) {
	base := tenThousand()
	ka, kb := key(1), key(2)
	for _, tc := range []struct {
		name      string
		transport bool
		rtts      float64
	}{{"transport authenticated", true, 1.5}, {"proof awaited", false, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newMemSyncer(base...), newMemSyncer(base...)
			a.put(memory.Sign(ka, "new on a", time.Unix(5000, 0)))
			b.put(memory.Sign(kb, "new on b", time.Unix(5001, 0)))
			oa := Options{Identity: ka, RequireAuth: true, ExpectPeer: kb.Public().(ed25519.PublicKey), TransportAuthenticated: tc.transport}
			ob := Options{Identity: kb, RequireAuth: true, ExpectPeer: ka.Public().(ed25519.PublicKey), TransportAuthenticated: tc.transport}
			sa, sb := syncBoth(t, tcpPair, a, b, oa, ob)
			if sa.Added != 1 || sb.Added != 1 || sa.MessagesSent != 1 || sb.MessagesSent != 1 || sa.Rejected+sb.Rejected != 0 {
				t.Fatalf("a=%+v b=%+v", sa, sb)
			}
			// Hello, Auth, Push, Bye: no Buckets, Ids or requests.
			if sa.FramesSent != 4 || sa.Version != 3 {
				t.Errorf("a sent %d frames (version %d), want 4: hello, auth, push, bye", sa.FramesSent, sa.Version)
			}
			if sa.RoundTrips != tc.rtts || sb.RoundTrips != tc.rtts {
				t.Errorf("round trips a=%v b=%v, want %v", sa.RoundTrips, sb.RoundTrips, tc.rtts)
			}
			if fmt.Sprint(inventoryOf(t, a)) != fmt.Sprint(inventoryOf(t, b)) {
				t.Fatal("not converged")
			}
		})
	}
}

// TestOlderPeers: a version 3 side syncs with version 2 and 1 peers, in
// both directions, and with a difference too large to push.
func TestOlderPeers(t *testing.T) {
	base := tenThousand()
	for _, tc := range []struct {
		name   string
		va, vb int
		extra  int // new memories on a
	}{
		{"3 with 2", 3, 2, 1}, {"2 with 3", 2, 3, 1}, {"3 with 1", 3, 1, 2},
		{"3 with 3, 20 new: requested", 3, 3, 20}, {"3 with 3, 300 new: buckets", 3, 3, 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newMemSyncer(base[:3000]...), newMemSyncer(base[:3000]...)
			a.put(signed(key(3), tc.extra, "extra")...)
			b.put(memory.Sign(key(4), "b's", time.Unix(9, 0)))
			sa, sb := syncBoth(t, pipePair, a, b, Options{Identity: key(1), version: tc.va}, Options{Identity: key(2), version: tc.vb})
			if sb.Added != tc.extra || sa.Added != 1 || sa.Version != min(tc.va, tc.vb) {
				t.Fatalf("a=%+v b=%+v", sa, sb)
			}
			if fmt.Sprint(inventoryOf(t, a)) != fmt.Sprint(inventoryOf(t, b)) {
				t.Fatal("not converged")
			}
		})
	}
}

// TestPushHostile: a version 3 peer pushes a memory the sketches did not
// name, and a forged one it did name; neither is stored.
func TestPushHostile(t *testing.T) {
	victim := newMemSyncer()
	mk := key(9)
	forged := memory.Sign(mk, "pay bob 1", time.Unix(1001, 0))
	forged.Content = "pay mallory 1000"
	extra := memory.Sign(mk, "unnamed", time.Unix(1002, 0))
	id := forged.ID()
	sk := newSketch(map[string][]string{forged.Author: {id}})

	ca, cb := pipePair(t)
	res := make(chan result, 1)
	go func() {
		st, err := Sync(context.Background(), ca, victim, Options{IdleTimeout: 5 * time.Second})
		res <- result{st, err}
	}()
	p := newRawPeer(t, cb)
	p.send(TypeHello, helloMsg{Nonce: nonceHex(), Version: 3, Summary: &summaryMsg{
		Authors: map[string]authorSummary{forged.Author: {Count: 1, Digest: digest([]string{id})}},
		Sketch:  sk.encode(),
	}})
	p.send(TypePush, pushMsg{Messages: []memory.Message{forged, extra}})
	p.send(TypeBye, byeMsg{})
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.st.Added != 0 || r.st.Rejected != 2 || len(inventoryOf(t, victim)) != 0 {
		t.Fatalf("stats %+v", r.st)
	}
	if !strings.Contains(errors.Join(r.st.RejectErrors...).Error(), "did not name") {
		t.Fatalf("reject errors %v", r.st.RejectErrors)
	}
}

// TestImpostorGetsNoPush: a peer claiming key(2) without proving it is
// refused, and is pushed nothing before it fails, unless the transport
// vouched for it.
func TestImpostorGetsNoPush(t *testing.T) {
	victim := newMemSyncer(memory.Sign(key(1), "secret", time.Unix(1, 0)))
	ca, cb := pipePair(t)
	res := make(chan error, 1)
	go func() {
		_, err := Sync(context.Background(), ca, victim, Options{Identity: key(1), RequireAuth: true, ExpectPeer: key(2).Public().(ed25519.PublicKey), IdleTimeout: 5 * time.Second})
		res <- err
	}()
	p := newRawPeer(t, cb)
	p.send(TypeHello, helloMsg{PubKey: hex.EncodeToString(key(2).Public().(ed25519.PublicKey)), Nonce: nonceHex(), Version: 3, Summary: &summaryMsg{
		Authors: map[string]authorSummary{}, Sketch: newSketch(nil).encode(),
	}})
	time.Sleep(200 * time.Millisecond) // a push would be on its way by now
	p.send(TypeAuth, authMsg{Signature: strings.Repeat("ab", 64)})
	if err := <-res; !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "prove key") {
		t.Fatalf("Sync = %v", err)
	}
	ca.Close()
	for m := range p.in {
		if m.Type == TypePush || m.Type == TypeMemoryResponse {
			t.Fatalf("impostor got %s", m.Type)
		}
	}
}

// slowConn delivers what it reads in small pieces with a pause between.
type slowConn struct {
	net.Conn
	pause time.Duration
}

func (c slowConn) Read(p []byte) (int, error) {
	time.Sleep(c.pause)
	return c.Conn.Read(p[:min(len(p), 4096)])
}

// TestSlowFrameIsNotAStall: a response frame that takes several idle
// timeouts to arrive, but keeps arriving, completes; the idle timeout is
// about bytes not moving, not about a frame's transfer time.
func TestSlowFrameIsNotAStall(t *testing.T) {
	big := signed(key(3), 40, strings.Repeat("x", 10000)) // ~420 KB
	a, b := newMemSyncer(big...), newMemSyncer()
	ca, cb := tcpPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rb := make(chan result, 1)
	idle := 300 * time.Millisecond
	go func() {
		st, err := Sync(ctx, slowConn{cb, 15 * time.Millisecond}, b, Options{IdleTimeout: idle})
		rb <- result{st, err}
	}()
	start := time.Now()
	// The sender's writes land in socket buffers long before the slow
	// reader drains them, so it sees silence; it gets a longer timeout
	// (in use, batches of ~2 s keep that silence far below it).
	if _, err := Sync(ctx, ca, a, Options{IdleTimeout: 10 * time.Second}); err != nil {
		t.Fatal(err)
	}
	r := <-rb
	if r.err != nil || r.st.Added != 40 {
		t.Fatalf("receiver: %+v %v", r.st, r.err)
	}
	if d := time.Since(start); d < 2*idle {
		t.Fatalf("transfer took %v; the test needs it slower than the idle timeout", d)
	}
}
