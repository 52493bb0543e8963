package trust_test

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/memory"
	"github.com/mmogit/mmogit/internal/syncproto"
	"github.com/mmogit/mmogit/internal/trust"
)

func key(b byte) ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = b
	}
	return ed25519.NewKeyFromSeed(seed)
}

func hexKey(k ed25519.PrivateKey) string { return hex.EncodeToString(k.Public().(ed25519.PublicKey)) }

func openStore(t *testing.T, msgs ...memory.Message) *memory.Store {
	t.Helper()
	s, err := memory.Open(filepath.Join(t.TempDir(), "messages"))
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) > 0 {
		if res, err := s.Add(context.Background(), msgs); err != nil || res.Added != len(msgs) {
			t.Fatalf("Add = %+v, %v", res, err)
		}
	}
	return s
}

// sync runs one session between a View of ours (for peer) and the peer's
// plain store, and returns both sides' stats.
func runSync(t *testing.T, ours *trust.View, theirs *memory.Store, peerKey ed25519.PrivateKey, selfKey ed25519.PrivateKey) (mine, peer syncproto.Stats) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	errc := make(chan error, 1)
	go func() {
		var err error
		peer, err = syncproto.Sync(ctx, c2, theirs, syncproto.Options{Identity: peerKey})
		errc <- err
	}()
	mine, err := syncproto.Sync(ctx, c1, ours, syncproto.Options{Identity: selfKey, RequireAuth: true, RefuseInbound: !ours.CanWrite()})
	if err != nil {
		t.Fatalf("our side: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("peer side: %v", err)
	}
	return mine, peer
}

func ids(msgs []memory.Message) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.ID())
	}
	slices.Sort(out)
	return out
}

func held(t *testing.T, s *memory.Store) []string {
	t.Helper()
	inv, err := s.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range inv {
		out = append(out, l...)
	}
	slices.Sort(out)
	return out
}

// TestViewOutbound: what each kind of peer receives from a store holding
// our public and sealed messages and a third party's.
func TestViewOutbound(t *testing.T) {
	self, third := key(1), key(2)
	stranger, recipient, reader, writer := key(3), key(4), key(5), key(6)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	public := []memory.Message{
		memory.Sign(self, "public one", t0),
		memory.Sign(self, "public two", t0.Add(time.Second)),
	}
	private := memory.Sign(self, "mmogit-age-v1:c2VhbGVkIHRvIHNlbGY=", t0.Add(2*time.Second))
	toRecipient := memory.Sign(self, "mmogit-age-v1:c2VhbGVkIHRvIHJlY2lwaWVudA==", t0.Add(3*time.Second))
	others := []memory.Message{
		memory.Sign(third, "third party, plain", t0.Add(4*time.Second)),
		memory.Sign(third, "mmogit-age-v1:dGhpcmQgcGFydHkgc2VhbGVk", t0.Add(5*time.Second)),
	}
	all := append(append(append([]memory.Message{}, public...), private, toRecipient), others...)
	index := map[string][]string{toRecipient.ID(): {hexKey(recipient)}}

	for _, tc := range []struct {
		name  string
		peer  ed25519.PrivateKey
		entry trust.Entry
		want  []memory.Message
	}{
		{"stranger", stranger, trust.Entry{}, public},
		{"recipient without a role", recipient, trust.Entry{}, append(slices.Clone(public), toRecipient)},
		{"write only", writer, trust.Entry{Write: true}, public},
		{"read", reader, trust.Entry{Read: true}, all},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ours := openStore(t, all...)
			theirs := openStore(t)
			v := &trust.View{
				Store: ours, Self: hexKey(self), Peer: hexKey(tc.peer), Entry: tc.entry,
				Recipients: func(id string) []string { return index[id] },
			}
			inv, err := v.Inventory(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !tc.entry.Read {
				// The summary is built from this: no third party's
				// author, no count of private memories.
				if len(inv) != 1 || len(inv[hexKey(self)]) != len(tc.want) {
					t.Errorf("inventory shown = %v, want only our %d visible messages", inv, len(tc.want))
				}
			}
			mine, _ := runSync(t, v, theirs, tc.peer, self)
			if got, want := held(t, theirs), ids(tc.want); !slices.Equal(got, want) {
				t.Errorf("peer received %d messages %v, want %d %v", len(got), got, len(want), want)
			}
			if mine.MessagesSent != len(tc.want) {
				t.Errorf("sent %d, want %d", mine.MessagesSent, len(tc.want))
			}
			// Asking by ID for what was not shown gets nothing either.
			got, err := v.Get(context.Background(), ids(all))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(got), ids(tc.want)) {
				t.Errorf("Get(all ids) served %d messages, want %d", len(got), len(tc.want))
			}
		})
	}
}

// TestViewInbound: what each kind of peer may store here.
func TestViewInbound(t *testing.T) {
	self, peer, third := key(1), key(7), key(8)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var pushed []memory.Message
	for i := range 5 {
		k := peer
		if i%2 == 1 {
			k = third
		}
		pushed = append(pushed, memory.Sign(k, fmt.Sprintf("pushed %d", i), t0.Add(time.Duration(i)*time.Second)))
	}
	for _, tc := range []struct {
		name         string
		entry        trust.Entry
		quota        *trust.Quota
		stored       int
		refused      int
		quotaCounted int
	}{
		{"stranger", trust.Entry{}, nil, 0, 5, 0},
		{"read only", trust.Entry{Read: true}, nil, 0, 5, 0},
		{"write", trust.Entry{Write: true}, trust.NewQuota(100, 1<<20), 5, 0, 5},
		{"write over the message quota", trust.Entry{Write: true}, trust.NewQuota(3, 1<<20), 3, 2, 3},
		{"write over the byte quota", trust.Entry{Write: true}, trust.NewQuota(100, 16), 2, 3, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			earlier := memory.Sign(self, "ours, stored before", t0)
			ours := openStore(t, earlier)
			theirs := openStore(t, pushed...)
			v := &trust.View{Store: ours, Self: hexKey(self), Peer: hexKey(peer), Entry: tc.entry, Quota: tc.quota}
			mine, _ := runSync(t, v, theirs, peer, self)
			if mine.Added != tc.stored || mine.Refused != tc.refused || mine.Rejected != 0 {
				t.Errorf("added %d, refused %d, rejected %d; want %d, %d, 0", mine.Added, mine.Refused, mine.Rejected, tc.stored, tc.refused)
			}
			if got := len(held(t, ours)); got != 1+tc.stored {
				t.Errorf("store holds %d, want %d (nothing earlier lost)", got, 1+tc.stored)
			}
			if tc.quota != nil {
				if n, _ := tc.quota.Used(hexKey(peer)); n != tc.quotaCounted {
					t.Errorf("quota used %d, want %d", n, tc.quotaCounted)
				}
			}
		})
	}
}

// TestQuotaWindow: a new day gives a peer a new quota, and peers do not
// share one.
func TestQuotaWindow(t *testing.T) {
	q := trust.NewQuota(2, 0)
	msgs := []memory.Message{{Content: "a"}, {Content: "b"}, {Content: "c"}}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if ok, refused := trust.TakeForTest(q, "p", msgs, now); len(ok) != 2 || refused != 1 {
		t.Fatalf("first day: %d ok, %d refused", len(ok), refused)
	}
	if ok, refused := trust.TakeForTest(q, "other", msgs, now); len(ok) != 2 || refused != 1 {
		t.Fatalf("another peer: %d ok, %d refused", len(ok), refused)
	}
	if ok, _ := trust.TakeForTest(q, "p", msgs, now.Add(23*time.Hour)); len(ok) != 0 {
		t.Fatalf("same day: %d ok", len(ok))
	}
	if ok, _ := trust.TakeForTest(q, "p", msgs, now.Add(24*time.Hour)); len(ok) != 2 {
		t.Fatalf("next day: %d ok", len(ok))
	}
}

// TestViewHeldNotRefetched: messages we hold but do not show a peer (a
// third party's) cost it no quota when it offers them. A read peer sees
// we hold them, so they are not fetched again; a write-only peer must not
// learn that, so they are fetched (and dropped as duplicates) like any.
func TestViewHeldNotRefetched(t *testing.T) {
	self, peer, third := key(1), key(7), key(8)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var pushed []memory.Message
	for i := range 5 {
		pushed = append(pushed, memory.Sign(third, fmt.Sprintf("third %d", i), t0.Add(time.Duration(i)*time.Second)))
	}
	for _, tc := range []struct {
		name          string
		entry         trust.Entry
		fetched, dups int
	}{
		{"read and write", trust.Entry{Read: true, Write: true}, 3, 0},
		{"write only", trust.Entry{Write: true}, 5, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ours := openStore(t, pushed[:2]...)
			theirs := openStore(t, pushed...)
			q := trust.NewQuota(100, 0)
			v := &trust.View{Store: ours, Self: hexKey(self), Peer: hexKey(peer), Entry: tc.entry, Quota: q}
			mine, _ := runSync(t, v, theirs, peer, self)
			if mine.Added != 3 || mine.Duplicates != tc.dups || mine.MessagesReceived != tc.fetched {
				t.Errorf("added %d, duplicates %d, fetched %d; want 3, %d, %d", mine.Added, mine.Duplicates, mine.MessagesReceived, tc.dups, tc.fetched)
			}
			if n, _ := q.Used(hexKey(peer)); n != 3 {
				t.Errorf("quota charged %d, want 3 (what was new)", n)
			}
		})
	}
}
