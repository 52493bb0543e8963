package memory

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Sizes of the sync-path benchmarks: a store of benchBase messages of about
// 2 KB (the size `mmogit bench` uses), filled the way sync fills it, in
// batches of benchBatch (the protocol's request size), so it ends up with
// one packfile per batch, as a real synced store does.
const (
	benchBase    = 10_000
	benchBatch   = 512
	benchBatches = 10 // batches BenchmarkAddLarge imports on top of the base
)

// benchKey is the author of the benchmark messages.
func benchKey() ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	seed[0] = 0xbe
	return ed25519.NewKeyFromSeed(seed)
}

// benchMessages signs benchBase + benchBatches*benchBatch messages once per
// test binary: signing is not what these benchmarks measure.
var benchMessages = sync.OnceValue(func() []Message {
	priv := benchKey()
	rng := rand.New(rand.NewChaCha8([32]byte{'m', 'e', 'm'}))
	raw := make([]byte, 1500)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	msgs := make([]Message, benchBase+benchBatches*benchBatch)
	for i := range msgs {
		for j := 0; j+8 <= len(raw); j += 8 {
			binary.LittleEndian.PutUint64(raw[j:], rng.Uint64())
		}
		content := fmt.Sprintf("bench %d: %s", i, base64.StdEncoding.EncodeToString(raw))
		msgs[i] = Sign(priv, content, t0.Add(time.Duration(i)*time.Second))
	}
	return msgs
})

// benchRepo returns a repository holding the first benchBase messages,
// imported in batches of benchBatch.
func benchRepo(b *testing.B) string {
	b.Helper()
	dir := filepath.Join(b.TempDir(), "base")
	s, err := Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	msgs := benchMessages()[:benchBase]
	for len(msgs) > 0 {
		n := min(len(msgs), benchBatch)
		if _, err := s.Add(context.Background(), msgs[:n]); err != nil {
			b.Fatal(err)
		}
		msgs = msgs[n:]
	}
	return dir
}

// cloneRepo copies a repository directory byte for byte (not git clone,
// which would repack it).
func cloneRepo(b *testing.B, src string) string {
	b.Helper()
	dst := filepath.Join(b.TempDir(), "clone")
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		b.Fatalf("cp: %v\n%s", err, out)
	}
	return dst
}

// BenchmarkAddLarge imports benchBatches batches of benchBatch new messages into
// a store that already holds benchBase (and has listed them once, as a sync
// session does before it receives anything).
func BenchmarkAddLarge(b *testing.B) {
	ctx := context.Background()
	base := benchRepo(b)
	fresh := benchMessages()[benchBase:]
	var total time.Duration
	for b.Loop() {
		b.StopTimer()
		s, err := Open(cloneRepo(b, base))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Inventory(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		for i := range benchBatches {
			res, err := s.Add(ctx, fresh[i*benchBatch:(i+1)*benchBatch])
			if err != nil || res.Added != benchBatch {
				b.Fatalf("Add = %+v, %v", res, err)
			}
		}
		total += time.Since(start)
	}
	b.ReportMetric(float64(b.N*benchBatches*benchBatch)/total.Seconds(), "memories/s")
}

// BenchmarkInventory lists a store of benchBase messages: cold is a newly
// opened Store (what a CLI command pays), warm a Store that listed them
// before (what each sync session of a running agent pays).
func BenchmarkInventory(b *testing.B) {
	ctx := context.Background()
	dir := benchRepo(b)
	check := func(b *testing.B, s *Store) {
		inv, err := s.Inventory(ctx)
		if err != nil || len(inv) != 1 {
			b.Fatalf("Inventory = %d authors, %v", len(inv), err)
		}
		for _, ids := range inv {
			if len(ids) != benchBase {
				b.Fatalf("Inventory = %d ids, want %d", len(ids), benchBase)
			}
		}
	}
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			s, err := Open(dir)
			if err != nil {
				b.Fatal(err)
			}
			check(b, s)
		}
	})
	b.Run("warm", func(b *testing.B) {
		s, err := Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		check(b, s)
		for b.Loop() {
			check(b, s)
		}
	})
}

// BenchmarkGet reads one sync request's worth (benchBatch ids) from a
// store of benchBase messages that has been listed once.
func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	s, err := Open(benchRepo(b))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Inventory(ctx); err != nil {
		b.Fatal(err)
	}
	msgs := benchMessages()[:benchBase]
	ids := make([]string, benchBatch)
	for i := range ids {
		ids[i] = msgs[(i*7919)%len(msgs)].ID()
	}
	for b.Loop() {
		got, err := s.Get(ctx, ids)
		if err != nil || len(got) != len(ids) {
			b.Fatalf("Get = %d messages, %v", len(got), err)
		}
	}
}

// BenchmarkPostLarge posts one message to a store of benchBase messages that has
// been listed once.
func BenchmarkPostLarge(b *testing.B) {
	ctx := context.Background()
	s, err := Open(benchRepo(b))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Inventory(ctx); err != nil {
		b.Fatal(err)
	}
	k := benchKey()
	i := 0
	for b.Loop() {
		if _, err := s.Post(ctx, k, fmt.Sprintf("post %d", i)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
