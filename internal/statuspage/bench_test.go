package statuspage

import (
	"context"
	"crypto/ed25519"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/memory"
	"github.com/mmogit/mmogit/internal/seal"
)

// BenchmarkMemoriesPoll measures what one page poll costs in memory
// listing with 300 sealed memories: a warm Dir (decryptions cached, the
// page's steady state) against a cold one (every message decrypted, the
// baseline), in interleaved rounds; it reports the medians and their
// ratio.
func BenchmarkMemoriesPoll(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	phrase, _ := identity.NewMnemonic()
	if err := identity.Save(dir, phrase, false); err != nil {
		b.Fatal(err)
	}
	id, err := identity.Load(dir)
	if err != nil {
		b.Fatal(err)
	}
	st, err := memory.Open(filepath.Join(dir, "messages"))
	if err != nil {
		b.Fatal(err)
	}
	for range 300 {
		c, err := seal.Seal("a memory for me", []ed25519.PublicKey{id.Public})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := st.Post(ctx, id.Private, c); err != nil {
			b.Fatal(err)
		}
	}
	warm := &Dir{Path: dir}
	if _, err := warm.Memories(ctx, "", maxMemories); err != nil {
		b.Fatal(err)
	}
	var cold, hot []time.Duration
	b.ResetTimer()
	for b.Loop() {
		d := &Dir{Path: dir}
		d.store = warm.store // the same repository scan cache: only decryption differs
		t0 := time.Now()
		if _, err := d.Memories(ctx, "", maxMemories); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := warm.Memories(ctx, "", maxMemories); err != nil {
			b.Fatal(err)
		}
		cold, hot = append(cold, t1.Sub(t0)), append(hot, time.Since(t1))
	}
	med := func(ds []time.Duration) float64 {
		slices.Sort(ds)
		return float64(ds[len(ds)/2].Microseconds())
	}
	c, h := med(cold), med(hot)
	b.ReportMetric(c, "cold-µs/poll")
	b.ReportMetric(h, "warm-µs/poll")
	if h > 0 {
		b.ReportMetric(c/h, "cold/warm")
	}
}
