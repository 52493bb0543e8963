package memory

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
)

func openStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "messages"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// gitCmd runs the real git CLI in the store's repository.
func gitCmd(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=test", "-c", "user.email=test@example.org"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// fsck requires `git fsck --full --strict` to pass without errors; dangling
// objects (a crash between objects and ref) would be fine but none are
// expected here.
func fsck(t testing.TB, dir string) {
	t.Helper()
	out := gitCmd(t, dir, "fsck", "--full", "--strict", "--no-progress")
	for _, bad := range []string{"error", "missing", "broken", "bad"} {
		if strings.Contains(out, bad) {
			t.Fatalf("git fsck reported %q:\n%s", bad, out)
		}
	}
}

func TestPostAllGit(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	k := testKey(t)
	var posted []Message
	for i := range 3 {
		m, err := s.Post(ctx, k, fmt.Sprintf("memory %d", i))
		if err != nil {
			t.Fatal(err)
		}
		posted = append(posted, m)
	}
	es, err := s.All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 3 {
		t.Fatalf("All = %d entries, want 3", len(es))
	}
	for i, e := range es {
		if !e.Valid || e.Message != posted[i] || e.ID != posted[i].ID() || e.Branch != "users/d75a9801" {
			t.Errorf("entry %d = %+v, want valid %+v", i, e, posted[i])
		}
	}
	// The git CLI sees one commit per post by the 8-hex author.
	log := gitCmd(t, s.Dir(), "log", "--format=%an %s", "users/d75a9801")
	if n := strings.Count(log, "d75a9801 memory "); n != 3 {
		t.Fatalf("git log:\n%s", log)
	}
	show := gitCmd(t, s.Dir(), "show", "users/d75a9801:"+FileName(posted[0]))
	if !strings.Contains(show, `"signature": "`+posted[0].Signature) {
		t.Fatalf("git show:\n%s", show)
	}
	fsck(t, s.Dir())

	// Reopening sees the same messages.
	s2, err := Open(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	inv, err := s2.Inventory(ctx)
	if err != nil || len(inv[posted[0].Author]) != 3 {
		t.Fatalf("Inventory = %v, %v", inv, err)
	}
	got, err := s2.Get(ctx, []string{posted[2].ID(), strings.Repeat("0", 64), posted[0].ID()})
	if err != nil || len(got) != 2 || got[0] != posted[2] || got[1] != posted[0] {
		t.Fatalf("Get = %v, %v", got, err)
	}
}

// TestAllTamper edits stored files with the git CLI, as an attacker with
// write access to the repository would: the edits must show up as invalid
// entries, never vanish, and never be served by Get.
func TestAllTamper(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	k := testKey(t)
	m1, _ := s.Post(ctx, k, "keep me")
	m2, err := s.Post(ctx, k, "pay alice 10")
	if err != nil {
		t.Fatal(err)
	}
	gitCmd(t, s.Dir(), "checkout", "-q", "users/d75a9801")
	p := filepath.Join(s.Dir(), filepath.FromSlash(FileName(m2)))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(b), "alice 10", "mallory 99", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.Dir(), "notes.txt"), []byte("not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitCmd(t, s.Dir(), "add", "-A")
	gitCmd(t, s.Dir(), "commit", "-q", "-m", "tamper")

	es, err := s.All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 3 {
		t.Fatalf("All = %d entries, want 3: %+v", len(es), es)
	}
	byPath := map[string]Entry{}
	for _, e := range es {
		byPath[e.Path] = e
	}
	tests := []struct {
		path  string
		valid bool
		err   error
	}{
		{FileName(m1), true, nil},
		{FileName(m2), false, ErrSignatureMismatch},
		{"notes.txt", false, ErrMalformed},
	}
	for _, tc := range tests {
		e, ok := byPath[tc.path]
		if !ok || e.Valid != tc.valid || (tc.err != nil && !errors.Is(e.Err, tc.err)) {
			t.Errorf("%s: %+v, want valid=%v err=%v", tc.path, e, tc.valid, tc.err)
		}
	}
	if e := byPath[FileName(m2)]; e.ID == m2.ID() {
		t.Error("tampered entry kept the original ID")
	}
	if got, _ := s.Get(ctx, []string{m2.ID()}); len(got) != 0 {
		t.Errorf("Get served a tampered message: %v", got)
	}
	// The branch keeps working after foreign commits.
	if _, err := s.Post(ctx, k, "after"); err != nil {
		t.Fatal(err)
	}
	fsck(t, s.Dir())
}

func TestAdd(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	a, b := testKey(t), otherKey(t, 2)
	ts := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	ma := Sign(a, "from a", ts)
	mb := Sign(b, "from b", ts)
	forged := ma
	forged.Content = "from a, honest"
	badHex := mb
	badHex.Signature = strings.ToUpper(badHex.Signature)

	tests := []struct {
		name string
		in   []Message
		want AddResult
	}{
		{"empty", nil, AddResult{}},
		{"two authors plus forgeries", []Message{ma, mb, forged, badHex, ma}, AddResult{Added: 2, Duplicate: 1, Rejected: 2}},
		{"idempotent", []Message{ma, mb}, AddResult{Duplicate: 2}},
		{"only forged", []Message{forged}, AddResult{Rejected: 1}},
	}
	for _, tc := range tests {
		got, err := s.Add(ctx, tc.in)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got.Added != tc.want.Added || got.Duplicate != tc.want.Duplicate || got.Rejected != tc.want.Rejected || len(got.Errors) != got.Rejected {
			t.Fatalf("%s: Add = %+v, want %+v", tc.name, got, tc.want)
		}
	}
	es, _ := s.All(ctx)
	if len(es) != 2 {
		t.Fatalf("All = %+v", es)
	}
	for _, e := range es {
		if !e.Valid || e.Branch != BranchFor(e.Message.Author) {
			t.Fatalf("bad entry %+v", e)
		}
	}
	fsck(t, s.Dir())
}

// helperEnv makes the test binary act as a second process posting to a
// repository (see TestHelperPoster).
const helperEnv = "MMOGIT_MEMORY_HELPER_DIR"

func TestHelperPoster(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		t.Skip("helper process only")
	}
	n, _ := strconv.Atoi(os.Getenv("MMOGIT_MEMORY_HELPER_N"))
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := s.Post(context.Background(), testKey(t), fmt.Sprintf("process %d", i)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestConcurrentPosts posts from goroutines on two Store instances and from
// a second process at once; every post must survive and fsck stay clean.
func TestConcurrentPosts(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	s2, err := Open(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, each, procPosts = 8, 5, 20
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperPoster$")
	cmd.Env = append(os.Environ(), helperEnv+"="+s.Dir(), "MMOGIT_MEMORY_HELPER_N="+strconv.Itoa(procPosts))
	var procOut strings.Builder
	cmd.Stdout, cmd.Stderr = &procOut, &procOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })

	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for g := range goroutines {
		st := s
		if g%2 == 1 {
			st = s2
		}
		wg.Go(func() {
			for i := range each {
				if _, err := st.Post(ctx, testKey(t), fmt.Sprintf("goroutine %d post %d", g, i)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper process: %v\n%s", err, procOut.String())
	}
	es, err := s.All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := goroutines*each + procPosts; len(es) != want {
		t.Fatalf("All = %d entries, want %d", len(es), want)
	}
	for _, e := range es {
		if !e.Valid {
			t.Fatalf("invalid entry %+v", e)
		}
	}
	commits := strings.Count(gitCmd(t, s.Dir(), "rev-list", "users/d75a9801"), "\n")
	if commits != goroutines*each+procPosts {
		t.Fatalf("%d commits, want one per post", commits)
	}
	fsck(t, s.Dir())
}

// TestCrashLeavesBranchIntact simulates a crash after objects were written
// but before the ref moved: the branch must still read cleanly.
func TestCrashLeavesBranchIntact(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	m, _ := s.Post(ctx, testKey(t), "before crash")
	// Write an orphan blob the way a half-done post would, then "crash".
	w := &objectWriter{st: s.st, gitDir: s.gitDir}
	te := &treeEdit{w: w, read: s.st}
	if _, err := te.apply(plumbing.ZeroHash, map[string][]byte{"ab/orphan.json": []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	es, err := s.All(ctx)
	if err != nil || len(es) != 1 || es[0].Message != m {
		t.Fatalf("All = %v, %v", es, err)
	}
	fsck(t, s.Dir())
}

func TestOpenCancelledLock(t *testing.T) {
	s := openStore(t)
	unlock, err := s.lockRepo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	s2, _ := Open(s.Dir())
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s2.Post(ctx, testKey(t), "blocked"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Post under a held lock = %v, want deadline exceeded", err)
	}
}

// TestPackedAddSeenByOtherInstance: a bulk Add writes a packfile; another
// Store that indexed the packs earlier must still find the new objects.
func TestPackedAddSeenByOtherInstance(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	s2, _ := Open(s.Dir())
	if _, err := s.Add(ctx, []Message{Sign(otherKey(t, 3), "first", time.Unix(1, 0))}); err != nil {
		t.Fatal(err)
	}
	if es, err := s2.All(ctx); err != nil || len(es) != 1 { // indexes packs now
		t.Fatalf("All = %v, %v", es, err)
	}
	var msgs []Message
	for i := range 3 * packThreshold {
		msgs = append(msgs, Sign(otherKey(t, 3), fmt.Sprintf("bulk %d", i), time.Unix(int64(10+i), 0)))
	}
	if res, err := s.Add(ctx, msgs); err != nil || res.Added != len(msgs) {
		t.Fatalf("Add = %+v, %v", res, err)
	}
	if packs, _ := filepath.Glob(filepath.Join(s.Dir(), ".git/objects/pack/*.pack")); len(packs) != 1 {
		t.Fatalf("packs: %v", packs)
	}
	es, err := s2.All(ctx)
	if err != nil || len(es) != 1+len(msgs) {
		t.Fatalf("other instance: %d entries, %v", len(es), err)
	}
	if _, err := s2.Post(ctx, otherKey(t, 3), "on top of the pack"); err != nil {
		t.Fatal(err)
	}
	fsck(t, s.Dir())
}

// TestPackEntryHeader checks the pack entry header against sizes worked out
// from the pack format (gitformat-pack: 3 type bits, 4 then 7 size bits).
func TestPackEntryHeader(t *testing.T) {
	tests := []struct {
		typ  plumbing.ObjectType
		size int64
		want []byte
	}{
		{plumbing.BlobObject, 0, []byte{0x30}},
		{plumbing.BlobObject, 15, []byte{0x3f}},
		{plumbing.BlobObject, 16, []byte{0xb0, 0x01}},
		{plumbing.TreeObject, 300, []byte{0xac, 0x12}},
		{plumbing.CommitObject, 1 << 20, []byte{0x90, 0x80, 0x80, 0x04}},
	}
	for _, tc := range tests {
		if got := packEntryHeader(tc.typ, tc.size); !bytes.Equal(got, tc.want) {
			t.Errorf("packEntryHeader(%v, %d) = %x, want %x", tc.typ, tc.size, got, tc.want)
		}
	}
}

// TestPackReadByGit has the real git CLI verify a pack we wrote, with
// objects large enough for multi-byte size headers, and read a message
// back from it.
func TestPackReadByGit(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	k := otherKey(t, 4)
	var msgs []Message
	for i := range packThreshold + 3 {
		msgs = append(msgs, Sign(k, strings.Repeat(fmt.Sprint(i), 1+i*9000), time.Unix(int64(100+i), 0)))
	}
	if res, err := s.Add(ctx, msgs); err != nil || res.Added != len(msgs) {
		t.Fatalf("Add = %+v, %v", res, err)
	}
	idx, _ := filepath.Glob(filepath.Join(s.Dir(), ".git/objects/pack/*.idx"))
	if len(idx) != 1 {
		t.Fatalf("pack indexes: %v", idx)
	}
	out := gitCmd(t, s.Dir(), "verify-pack", "-v", idx[0])
	// blobs + 1 root tree + fan-out trees + 1 commit, none a delta
	if n := strings.Count(out, " blob "); n != len(msgs) {
		t.Errorf("verify-pack lists %d blobs, want %d:\n%s", n, len(msgs), out)
	}
	last := msgs[len(msgs)-1]
	got := gitCmd(t, s.Dir(), "show", BranchFor(last.Author)+":"+FileName(last))
	var back Message
	if err := json.Unmarshal([]byte(got), &back); err != nil || back != last {
		t.Fatalf("git show gave %.80q (%v), want the last message", got, err)
	}
	fsck(t, s.Dir())
	// A fresh instance reads the pack through go-git, verifying every message.
	s2, err := Open(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	es, err := s2.All(ctx)
	if err != nil || len(es) != len(msgs) {
		t.Fatalf("All = %d entries, %v", len(es), err)
	}
	for _, e := range es {
		if !e.Valid {
			t.Fatalf("entry %s invalid: %v", e.Path, e.Err)
		}
	}
}

// TestPostRefusesInvalidUTF8: the JSON file would hold U+FFFD instead of
// the signed bytes, so the stored message could never verify.
func TestPostRefusesInvalidUTF8(t *testing.T) {
	s := openStore(t)
	_, err := s.Post(context.Background(), testKey(t), "caf\xe9")
	if !errors.Is(err, ErrNotUTF8) {
		t.Fatalf("Post = %v, want ErrNotUTF8", err)
	}
	if es, err := s.All(context.Background()); err != nil || len(es) != 0 {
		t.Fatalf("All = %v, %v; want nothing stored", es, err)
	}
}

// TestCachedScanMatchesFreshScan: after commits that extend the cached
// scan (bulk, single, duplicate), a store answers All exactly as a fresh
// instance that walks the repository from scratch.
func TestCachedScanMatchesFreshScan(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	k, k2 := otherKey(t, 5), otherKey(t, 6)
	var bulk []Message
	for i := range 2 * packThreshold {
		bulk = append(bulk, Sign(k, fmt.Sprint("bulk ", i), time.Unix(int64(1000+i), 0)))
	}
	steps := []func() error{
		func() error { _, err := s.Post(ctx, k, "first"); return err },
		func() error { _, err := s.All(ctx); return err }, // prime the cache
		func() error { _, err := s.Add(ctx, bulk); return err },
		func() error { _, err := s.Post(ctx, k, "after the pack"); return err },
		func() error {
			_, err := s.Add(ctx, append(bulk[:2:2], Sign(k2, "other author", time.Unix(5, 0))))
			return err
		},
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		got, err := s.All(ctx)
		if err != nil {
			t.Fatal(err)
		}
		fresh, err := Open(s.Dir())
		if err != nil {
			t.Fatal(err)
		}
		want, err := fresh.All(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("step %d: cached store lists %d entries, fresh one %d", i, len(got), len(want))
		}
		for j := range got {
			g, w := got[j], want[j]
			if g.ID != w.ID || g.Path != w.Path || g.Branch != w.Branch || g.Valid != w.Valid || g.Message != w.Message {
				t.Fatalf("step %d entry %d: cached %+v, fresh %+v", i, j, g, w)
			}
		}
	}
}

// TestStaleRefTempRemoved: a writer killed between creating its ref
// temporary and renaming it leaves mmogit-ref-*.tmp in .git; the next
// write removes it (under the lock, where no live writer can own one).
func TestStaleRefTempRemoved(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	if _, err := s.Post(ctx, testKey(t), "before the crash"); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(s.Dir(), ".git", "mmogit-ref-123456.tmp")
	if err := os.WriteFile(stale, []byte("0000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(s.Dir()) // the process that comes after the crash
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Post(ctx, testKey(t), "after the crash"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale ref temporary still there: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(s.Dir(), ".git", "mmogit-ref-*.tmp")); len(left) != 0 {
		t.Fatalf("temporaries left: %v", left)
	}
	es, err := s2.All(ctx)
	if err != nil || len(es) != 2 {
		t.Fatalf("All = %d entries, %v", len(es), err)
	}
	fsck(t, s.Dir())
}
