package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/cluster"
	"github.com/mmogit/mmogit/internal/localapi"
	"github.com/mmogit/mmogit/internal/memory"
	"github.com/mmogit/mmogit/internal/platform"
)

// Fault injection on real agents: tor dies in the middle of a transfer (on
// either end), and the disk fills up while a received batch is stored. In
// every case the failing sync must say so, the repositories must stay
// consistent, and the next sync must finish the job with no message lost or
// stored twice.
//
// The agents are shared between the subtests to keep the run short: holder
// posts batches, puller pulls them while tors are killed, and cramped keeps
// its repository on a tiny tmpfs.

const (
	faultBatch       = 3000 // messages per bulk batch
	faultContentSize = 1000 // bytes of incompressible content per message
)

func TestFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("three agents on the private Tor network, ~15,000 messages moved: slow")
	}
	cramped, tmpfs := startOnTmpfs(t, "cramped", 1536<<10)
	ag := startAgents(t, agentSpec{name: "holder"}, agentSpec{name: "puller"})
	holder, puller := ag[0], ag[1]
	if err := cluster.TrustEachOther(cramped, holder, puller); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := cramped.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}

	t.Run("OwnTorKilledMidSync", func(t *testing.T) {
		bulkPost(t, holder, "first", faultBatch)
		interruptedPull(t, puller, holder, puller)
		waitRecovered(t, puller, 1)
		r := syncRetry(t, puller, holder)
		t.Logf("second sync: received %d in %.1fs", r.Received, r.DurationMs/1000)
		wantExactly(t, puller, holder)
	})

	t.Run("PeerTorKilledMidSync", func(t *testing.T) {
		bulkPost(t, holder, "second", faultBatch)
		interruptedPull(t, puller, holder, holder)
		waitRecovered(t, holder, 1)
		r := syncRetry(t, puller, holder)
		t.Logf("second sync: received %d in %.1fs", r.Received, r.DurationMs/1000)
		wantExactly(t, puller, holder)
	})

	t.Run("DiskFullWhileStoring", func(t *testing.T) {
		// Needs more than the tmpfs holds; the subtests above leave more.
		if len(entriesByID(t, holder)) < faultBatch {
			bulkPost(t, holder, "third", faultBatch)
		}
		post(t, cramped, "written before the disk filled", "also before")
		before := entriesByID(t, cramped)
		r, err := syncOnce(t, cramped, holder)
		if err == nil || r.Error == "" {
			t.Fatalf("sync into a full disk succeeded: %+v %v", r, err)
		}
		if r.ErrorKind != "disk_full" {
			t.Errorf("error kind %q, want disk_full: %s", r.ErrorKind, r.Error)
		}
		t.Logf("sync into a full disk: %s (%s)", r.Error, r.ErrorKind)
		after := entriesByID(t, cramped)
		for id, e := range before {
			if a, ok := after[id]; !ok || a.Message != e.Message {
				t.Errorf("message %.8s stored before the disk filled is gone or changed", id)
			}
		}
		for id, e := range after {
			if !e.Valid {
				t.Errorf("invalid entry %.8s at %s: %v", id, e.Path, e.Err)
			}
		}
		t.Logf("%d of %d messages stored before the disk filled", len(after)-len(before), len(entriesByID(t, holder)))
		gitFsck(t, cramped)
		noJunk(t, tmpfs)
		if r, err := syncOnce(t, cramped, holder); err == nil || r.ErrorKind != "disk_full" {
			t.Errorf("second sync into the still-full disk: %+v %v", r, err)
		}
		// A small batch takes the loose-object path instead of a pack; fill
		// what the failed pack left free first.
		fillDisk(t, filepath.Join(tmpfs, "filler"))
		small := make([]memory.Message, 3)
		for i := range small {
			small[i] = memory.Sign(holder.ID.Private, fmt.Sprintf("small %d %s", i, strings.Repeat("x", 8000)), time.Now())
		}
		st, err := memory.Open(tmpfs)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Add(context.Background(), small); !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("small add into the full disk: %v, want ENOSPC", err)
		}
		noJunk(t, tmpfs)
		gitFsck(t, cramped)
		os.Remove(filepath.Join(tmpfs, "filler"))

		// Free space: the next sync completes.
		if err := remountTmpfs(tmpfs, "size=64m"); err != nil {
			t.Fatalf("remount %s bigger: %v", tmpfs, err)
		}
		r = syncRetry(t, cramped, holder)
		t.Logf("after freeing space: received %d in %.1fs", r.Received, r.DurationMs/1000)
		wantExactly(t, cramped, holder)
		noJunk(t, tmpfs)
	})
}

// startOnTmpfs starts an agent whose messages repository lives on a tmpfs
// of size bytes, mounted before the agent creates the repository. The
// mount is removed after the agent has stopped.
func startOnTmpfs(t *testing.T, name string, size int) (*cluster.Agent, string) {
	t.Helper()
	o := cluster.AgentOptions{Bin: bin, Dir: filepath.Join(t.TempDir(), name), Name: name, Testnet: testnetDir(t), Verbose: true}
	a, err := cluster.Prepare(o)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(a.Dir, "messages")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := mountTmpfs(dir, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		t.Fatalf("mount tmpfs (needs Linux, and root or CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() {
		if err := unmountTmpfs(dir); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	if err := a.Start(o); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.Stop(context.Background()); err != nil {
			t.Errorf("%s: %v", a.Name, err)
		}
		if t.Failed() {
			t.Logf("log of %s:\n%s", a.Name, a.Tail(60))
		}
		checkLogClean(t, a)
	})
	return a, dir
}

// bulkPost stores n messages signed by a at once (one Add, as a sync would),
// each with incompressible content so that transfers take measurable time.
func bulkPost(t *testing.T, a *cluster.Agent, tag string, n int) {
	t.Helper()
	st, err := memory.Open(filepath.Join(a.Dir, "messages"))
	if err != nil {
		t.Fatal(err)
	}
	msgs := make([]memory.Message, n)
	noise := make([]byte, faultContentSize*3/4)
	base := time.Now()
	for i := range msgs {
		rand.Read(noise)
		content := fmt.Sprintf("%s %d %s", tag, i, base64.StdEncoding.EncodeToString(noise))
		msgs[i] = memory.Sign(a.ID.Private, content, base.Add(time.Duration(i)*time.Millisecond))
	}
	start := time.Now()
	res, err := st.Add(context.Background(), msgs)
	if err != nil || res.Added != n {
		t.Fatalf("bulk add: %+v %v", res, err)
	}
	t.Logf("%s: %d messages stored in %.1fs", a.Name, n, time.Since(start).Seconds())
}

// syncOnce runs `mmogit --json sync` from one agent to another and returns
// the result and the CLI's exit error (non-nil when the sync failed).
func syncOnce(t *testing.T, from, to *cluster.Agent) (localapi.SyncResult, error) {
	t.Helper()
	out, err := run(t, from, "--json", "sync", to.ID.OnionAddress())
	var s localapi.SyncSummary
	if jerr := json.Unmarshal([]byte(out), &s); jerr != nil || len(s.Peers) != 1 {
		t.Fatalf("sync output %q: %v (%v)", out, jerr, err)
	}
	return s.Peers[0], err
}

// syncRetry syncs and, if the failure is one the result says is worth
// retrying (tor still learning the peer's new descriptor), retries a few
// times as a careful caller would. Any other failure is fatal.
func syncRetry(t *testing.T, from, to *cluster.Agent) localapi.SyncResult {
	t.Helper()
	for attempt := 1; ; attempt++ {
		r, err := syncOnce(t, from, to)
		if r.Error == "" && err == nil {
			return r
		}
		if r.RetryAfterMs <= 0 || attempt == 4 {
			t.Fatalf("%s → %s sync failed (attempt %d): %s (%s)", from.Name, to.Name, attempt, r.Error, r.ErrorKind)
		}
		t.Logf("attempt %d: %s (%s); retrying in %d ms", attempt, r.Error, r.ErrorKind, r.RetryAfterMs)
		time.Sleep(time.Duration(r.RetryAfterMs) * time.Millisecond)
	}
}

// interruptedPull has puller sync with holder and SIGKILLs victim's tor as
// soon as the first received batch lands in puller's repository. The sync
// must fail with a typed error.
func interruptedPull(t *testing.T, puller, holder, victim *cluster.Agent) {
	t.Helper()
	packDir := filepath.Join(puller.Dir, "messages", ".git", "objects", "pack")
	before := packs(packDir)
	countBefore := len(entriesByID(t, puller))

	type outcome struct {
		r   localapi.SyncResult
		err error
	}
	done := make(chan outcome, 1)
	start := time.Now()
	go func() {
		out, err := run(t, puller, "--json", "sync", holder.ID.OnionAddress())
		var s localapi.SyncSummary
		if jerr := json.Unmarshal([]byte(out), &s); jerr != nil || len(s.Peers) != 1 {
			done <- outcome{err: fmt.Errorf("sync output %q: %v (%v)", out, jerr, err)}
			return
		}
		done <- outcome{s.Peers[0], err}
	}()

	var o outcome
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case o = <-done:
			t.Fatalf("sync ended before the first batch was stored: %+v %v", o.r, o.err)
		case <-tick.C:
			if len(packs(packDir)) > len(before) {
				break wait
			}
			if time.Since(start) > 2*time.Minute {
				t.Fatal("no batch arrived within 2 minutes")
			}
		}
	}
	pid, err := victim.TorPID()
	if err != nil {
		t.Fatal(err)
	}
	if err := platform.Kill(pid); err != nil {
		t.Fatalf("kill %s's tor: %v", victim.Name, err)
	}
	t.Logf("first batch stored after %.1fs; killed %s's tor (pid %d)", time.Since(start).Seconds(), victim.Name, pid)
	killed := time.Now()
	select {
	case o = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("sync did not return within 2 minutes of the kill")
	}
	if o.r.Error == "" || o.err == nil {
		t.Fatalf("sync succeeded although %s's tor died: %+v", victim.Name, o.r)
	}
	if o.r.ErrorKind == "" {
		t.Errorf("failed sync has no error kind: %+v", o.r)
	}
	got := len(entriesByID(t, puller)) - countBefore
	t.Logf("sync failed %.1fs after the kill: %s (%s); %d of %d messages stored", time.Since(killed).Seconds(), o.r.Error, o.r.ErrorKind, got, faultBatch)
	if got >= faultBatch {
		t.Logf("warning: the whole batch arrived before the kill took effect")
	}
}

// waitRecovered waits until a's agent has restarted its tor at least
// restarts times and republished its onion service.
func waitRecovered(t *testing.T, a *cluster.Agent, restarts int) {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		st, err := a.Client.Status(ctx)
		if err == nil && st.TorRestarts >= restarts && st.Published {
			t.Logf("%s recovered in %.1fs (tor restarts %d)", a.Name, time.Since(start).Seconds(), st.TorRestarts)
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s did not recover: %+v %v", a.Name, st, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// fillDisk writes name until its filesystem is full.
func fillDisk(t *testing.T, name string) {
	t.Helper()
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", name, err)
			}
			return
		}
	}
}

// noJunk fails if failed writes left temporary files in a repository.
func noJunk(t *testing.T, repo string) {
	t.Helper()
	junk, _ := filepath.Glob(filepath.Join(repo, ".git", "objects", "pack", "tmp_*"))
	loose, _ := filepath.Glob(filepath.Join(repo, ".git", "objects", "??", "tmp_*"))
	refs, _ := filepath.Glob(filepath.Join(repo, ".git", "mmogit-ref-*.tmp"))
	if junk = append(append(junk, loose...), refs...); len(junk) > 0 {
		t.Errorf("failed writes left temporary files behind: %v", junk)
	}
}

func packs(dir string) []string {
	ps, _ := filepath.Glob(filepath.Join(dir, "pack-*.pack"))
	return ps
}

// entriesByID reads every stored file of a's repository and fails on an ID
// stored twice.
func entriesByID(t *testing.T, a *cluster.Agent) map[string]memory.Entry {
	t.Helper()
	st, err := memory.Open(filepath.Join(a.Dir, "messages"))
	if err != nil {
		t.Fatal(err)
	}
	all, err := st.All(context.Background())
	if err != nil {
		t.Fatalf("%s: read repository: %v", a.Name, err)
	}
	byID := make(map[string]memory.Entry, len(all))
	for _, e := range all {
		if _, dup := byID[e.ID]; dup {
			t.Errorf("%s stores message %.8s twice (%s)", a.Name, e.ID, e.Path)
		}
		byID[e.ID] = e
	}
	return byID
}

// wantExactly checks that got holds every message of want (and nothing of
// want's author that want lacks), each once and valid, and that got's
// repository passes git fsck.
func wantExactly(t *testing.T, got, want *cluster.Agent) {
	t.Helper()
	g, w := entriesByID(t, got), entriesByID(t, want)
	missing, extra, invalid := 0, 0, 0
	for id := range w {
		if _, ok := g[id]; !ok {
			missing++
		}
	}
	for id, e := range g {
		if !e.Valid {
			invalid++
		}
		if _, ok := w[id]; !ok && e.Message.Author == want.ID.PubHex() {
			extra++
		}
	}
	if missing+extra+invalid > 0 {
		t.Errorf("%s vs %s: %d missing, %d unexpected, %d invalid (has %d, want %d)", got.Name, want.Name, missing, extra, invalid, len(g), len(w))
	}
	gitFsck(t, got)
}

// gitFsck runs the real git's consistency check on a's repository.
func gitFsck(t *testing.T, a *cluster.Agent) {
	t.Helper()
	cmd := exec.Command("git", "-C", filepath.Join(a.Dir, "messages"), "fsck", "--full", "--strict", "--no-dangling", "--no-progress")
	out, err := cmd.CombinedOutput()
	var complaints []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		// HEAD names master, which mmogit never creates: only users/*.
		if l != "" && !strings.HasPrefix(l, "notice: HEAD points to an unborn branch") {
			complaints = append(complaints, l)
		}
	}
	if err != nil || len(complaints) > 0 {
		t.Errorf("git fsck on %s: %v\n%s", a.Name, err, strings.Join(complaints, "\n"))
	}
}
