package syncproto

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/memory"
)

// memSyncer is an in-memory Syncer for fast tests with many messages. Add
// verifies like memory.Store does; put stores without verifying, for test
// fixtures that are "already in the store".
type memSyncer struct {
	mu   sync.Mutex // mu guards msgs
	msgs map[string]memory.Message
}

var _ Syncer = (*memSyncer)(nil)

func newMemSyncer(msgs ...memory.Message) *memSyncer {
	f := &memSyncer{msgs: map[string]memory.Message{}}
	f.put(msgs...)
	return f
}

func (f *memSyncer) put(msgs ...memory.Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range msgs {
		f.msgs[m.ID()] = m
	}
}

func (f *memSyncer) Inventory(ctx context.Context) (map[string][]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inv := map[string][]string{}
	for id, m := range f.msgs {
		inv[m.Author] = append(inv[m.Author], id)
	}
	for _, ids := range inv {
		sort.Strings(ids)
	}
	return inv, nil
}

func (f *memSyncer) Get(ctx context.Context, ids []string) ([]memory.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]memory.Message, 0, len(ids))
	for _, id := range ids {
		if m, ok := f.msgs[id]; ok {
			out = append(out, m)
		}
	}
	return out, nil
}

func (f *memSyncer) Add(ctx context.Context, msgs []memory.Message) (memory.AddResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var res memory.AddResult
	for _, m := range msgs {
		if err := m.Verify(); err != nil {
			res.Rejected++
			res.Errors = append(res.Errors, fmt.Errorf("memsyncer: %w", err))
			continue
		}
		id := m.ID()
		if _, ok := f.msgs[id]; ok {
			res.Duplicate++
			continue
		}
		f.msgs[id] = m
		res.Added++
	}
	return res, nil
}

// signed returns n messages by k, signed, with distinct contents.
func signed(k ed25519.PrivateKey, n int, prefix string) []memory.Message {
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	msgs := make([]memory.Message, n)
	for i := range msgs {
		msgs[i] = memory.Sign(k, fmt.Sprintf("%s memory %d", prefix, i), base.Add(time.Duration(i)*time.Second))
	}
	return msgs
}

var (
	base10kOnce sync.Once
	base10k     []memory.Message
)

// tenThousand returns 10,000 signed messages by key(1), signed once per
// test binary.
func tenThousand() []memory.Message {
	base10kOnce.Do(func() { base10k = signed(key(1), 10000, "base") })
	return base10k
}

// TestIncrementalOneNewOfTenThousand: the bench's case. One side has one
// memory more than the other out of 10,001 by the same author; the sync
// must cost bytes in proportion to the change, not to the store.
func TestIncrementalOneNewOfTenThousand(t *testing.T) {
	base := tenThousand()
	a, b := newMemSyncer(base...), newMemSyncer(base...)
	a.put(memory.Sign(key(1), "one more memory", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)))
	sa, sb := syncBoth(t, pipePair, a, b, Options{Identity: key(1)}, Options{Identity: key(2)})
	t.Logf("1 new of 10,001: a sent %d bytes in %d frames, b sent %d bytes in %d frames", sa.BytesSent, sa.FramesSent, sb.BytesSent, sb.FramesSent)
	if sb.Added != 1 || sa.Added != 0 || sa.Rejected+sb.Rejected != 0 {
		t.Fatalf("stats a=%+v b=%+v", sa, sb)
	}
	if sa.BytesSent > 20_000 || sb.BytesSent > 20_000 {
		t.Errorf("1 new of 10,001 moved %d and %d bytes; want under 20 KB each way", sa.BytesSent, sb.BytesSent)
	}

	// Identical stores: hello (with the summary and its ~2.8 KB sketch),
	// auth, bye.
	sa, sb = syncBoth(t, pipePair, a, b, Options{Identity: key(1)}, Options{Identity: key(2)})
	t.Logf("identical 10,001: %d bytes each way", sa.BytesSent)
	if sa.FramesSent != 3 || sa.BytesSent > 4000 || sb.BytesSent > 4000 {
		t.Errorf("identical stores: a=%+v b=%+v", sa, sb)
	}
}
