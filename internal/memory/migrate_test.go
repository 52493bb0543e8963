package memory

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"strings"
	"testing"
	"time"
)

// entryKey identifies what an entry holds, wherever it is stored.
func entryKey(e Entry) string {
	if e.ID != "" {
		return fmt.Sprintf("%s|%s|%v|%v", e.Branch, e.ID, e.Valid, e.Err)
	}
	return fmt.Sprintf("%s|%s|%v", e.Branch, e.Path, e.Err) // not a message: stays where it was
}

func snapshot(t *testing.T, dir string) map[string]Entry {
	t.Helper()
	s, err := Open(dir) // a fresh instance: nothing cached
	if err != nil {
		t.Fatal(err)
	}
	es, err := s.All(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]Entry, len(es))
	for _, e := range es {
		k := entryKey(e)
		if _, dup := out[k]; dup {
			t.Fatalf("entry %s listed twice", k)
		}
		out[k] = e
	}
	return out
}

// TestMigrate10k fills a repository in the old fan-out layout with 10,000
// messages by two authors (plus a non-message file and a message edited
// after signing), migrates it while another writer posts, and checks that
// every entry is there before and after, that messages now sit at the root
// under FileName, and that git fsck --strict is clean.
func TestMigrate10k(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 messages")
	}
	ctx := context.Background()
	s := openStore(t)
	s.fanOut = true
	keys := []ed25519.PrivateKey{testKey(t), ed25519.NewKeyFromSeed(make([]byte, 32))}
	t0 := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	const n = 10_000
	var batch []Message
	for i := range n {
		batch = append(batch, Sign(keys[i%2], fmt.Sprintf("memory %d", i), t0.Add(time.Duration(i)*time.Millisecond)))
		if len(batch) == 512 || i == n-1 {
			if _, err := s.Add(ctx, batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	// Leftovers that are not (valid) messages must survive untouched.
	bad := Sign(keys[0], "pay alice 10", t0)
	bad.Content = "pay mallory 99"
	data, _ := encode(bad)
	branch := BranchFor(bad.Author)
	if _, err := s.commit(ctx, branch, map[string][]byte{
		"zz/notes.txt":       []byte("not json"),
		fanOutPath(bad.ID()): data,
	}, "leftovers"); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, s.Dir())
	if len(before) != n+2 {
		t.Fatalf("before: %d entries, want %d", len(before), n+2)
	}
	for _, e := range before {
		if e.ID != "" && !strings.Contains(e.Path, "/") {
			t.Fatalf("fan-out store wrote %s at the root", e.Path)
		}
	}

	// A writer posting during the migration waits for the lock; its post
	// must not be lost either way round.
	s2, err := Open(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	posted := make(chan Message, 1)
	go func() {
		m, err := s2.Post(ctx, keys[1], "during migration")
		if err != nil {
			t.Error(err)
		}
		posted <- m
	}()
	res, err := s.Migrate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	during := <-posted
	if res.Branches != 2 || res.Moved != n+1 || res.Kept != 1 {
		t.Fatalf("Migrate = %+v, want 2 branches, %d moved, 1 kept", res, n+1)
	}
	after := snapshot(t, s.Dir())
	if len(after) != n+3 {
		t.Fatalf("after: %d entries, want %d (+1 posted during)", len(after), n+3)
	}
	for k, e := range before {
		a, ok := after[k]
		if !ok {
			t.Fatalf("lost %s (%s)", k, e.Path)
		}
		if a.Message != e.Message {
			t.Fatalf("%s changed: %+v -> %+v", k, e.Message, a.Message)
		}
		if e.ID != "" && a.Path != FileName(e.Message) {
			t.Fatalf("%s at %s, want %s", k, a.Path, FileName(e.Message))
		}
	}
	found := false
	for _, e := range after {
		found = found || (e.ID == during.ID() && e.Valid)
	}
	if !found {
		t.Fatal("the post made during the migration is gone")
	}
	// keys[0]'s branch got exactly one commit: the migration.
	if got := gitCmd(t, s.Dir(), "log", "-1", "--format=%s", branch); !strings.HasPrefix(got, "migrate ") {
		t.Fatalf("last commit on %s: %q, want the migration", branch, got)
	}
	if got := gitCmd(t, s.Dir(), "ls-tree", "--name-only", branch); strings.Count(got, "\n") != n/2+1+1 {
		t.Fatalf("%s root holds %d names, want %d messages + zz/", branch, strings.Count(got, "\n"), n/2+1)
	}
	fsck(t, s.Dir())
	if res, err := s.Migrate(ctx); err != nil || res.Branches != 0 || res.Moved != 0 {
		t.Fatalf("second Migrate = %+v, %v; want nothing to do", res, err)
	}
}
