package e2e

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/cluster"
	"github.com/mmogit/mmogit/internal/localapi"
	"github.com/mmogit/mmogit/internal/platform"
	"github.com/mmogit/mmogit/internal/testnet"
)

// Tests for public-network conditions (make test-public): the shared
// network then runs with $MMOGIT_TESTNET_PROFILE's shaping, and these add
// what only makes sense there.

// ranExplicitly reports whether -run names the test, so that a test
// skipped by default still runs when asked for by name.
func ranExplicitly(name string) bool {
	f := flag.Lookup("test.run")
	return f != nil && strings.Contains(f.Value.String(), name)
}

// TestBulkSync: ~5 MB of memories cross a sync on the `slow` profile
// (public latency, ~100 KB/s per circuit) and all of them arrive, each
// once and valid. It runs when the shared network is slow, or by name.
func TestBulkSync(t *testing.T) {
	p, err := testnet.ProfileFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if p != testnet.ProfileSlow && !ranExplicitly("TestBulkSync") {
		t.Skipf("needs %s=slow (make test-public runs it), or -run TestBulkSync", testnet.ProfileEnv)
	}
	ag := startAgents(t, agentSpec{name: "holder"}, agentSpec{name: "puller"})
	holder, puller := ag[0], ag[1]
	const n = 5000 // × ~1 KB of incompressible content ≈ 5 MB
	bulkPost(t, holder, "bulk", n)
	// One sync must carry it all: a sync that fails part-way on a slow
	// circuit (e.g. a transfer deadline per frame rather than per byte of
	// progress) fails on the same batch every time a user retries.
	start := time.Now()
	r, err := syncLong(t, puller, holder, 15*time.Minute)
	if err != nil || r.Error != "" {
		t.Fatalf("profile %s: sync failed after %.1fs with %d of %d messages received: %s (%s)",
			p, time.Since(start).Seconds(), r.Received, n, r.Error, r.ErrorKind)
	}
	t.Logf("profile %s: %d messages (%d bytes received) in %.1fs (%.0f KB/s)",
		p, r.Received, r.BytesRecv, time.Since(start).Seconds(), float64(r.BytesRecv)/time.Since(start).Seconds()/1e3)
	wantExactly(t, puller, holder)
}

// TestShapedFaults: on a shaped network of its own (the shared network's
// profile, with shapers even on loopback), a sync completes — with the
// retries a careful caller makes — while a fraction of the connections
// between tor nodes are reset mid-stream, and while a relay goes away and
// comes back. The shapers' counters show the faults did happen.
func TestShapedFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("its own private Tor network and two agents")
	}
	p, err := testnet.ProfileFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	nw, err := testnet.Start(ctx, testnet.Options{Dir: t.TempDir(), Profile: p, Shaped: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nw.Close() })
	ag := startAgentsOn(t, nw.Info().Dir, agentSpec{name: "holder"}, agentSpec{name: "puller"})
	holder, puller := ag[0], ag[1]

	t.Run("ConnectionsResetMidStream", func(t *testing.T) {
		// Connections the tors open from now on: 20 % die after at most
		// 256 KiB (netshape's default ResetAfter).
		for _, node := range nw.ShapedNodes() {
			nw.Shaper(node).SetResetFraction(0.2)
		}
		defer func() {
			for _, node := range nw.ShapedNodes() {
				nw.Shaper(node).SetResetFraction(0)
			}
		}()
		before := resets(nw)
		// Whether a reset happens is drawn per new connection (and a
		// chosen one must carry its drawn byte count), so a round may see
		// none: repeat, each round a fresh batch that must arrive exactly,
		// until the fault has struck at least once.
		const rounds = 5
		for round := 1; ; round++ {
			// Drop the tors' existing connections so that new ones draw.
			for _, node := range nw.ShapedNodes() {
				nw.Shaper(node).SetDown(true)
				nw.Shaper(node).SetDown(false)
			}
			bulkPost(t, holder, fmt.Sprintf("reset%d", round), 1500)
			syncPersist(t, puller, holder, 8)
			wantExactly(t, puller, holder)
			if got := resets(nw) - before; got > 0 {
				t.Logf("%d connections reset mid-stream in %d round(s)", got, round)
				break
			}
			if round == rounds {
				t.Fatalf("no connection was reset mid-stream in %d rounds: the fault was not exercised", rounds)
			}
		}
	})

	t.Run("RelayDownAndBack", func(t *testing.T) {
		bulkPost(t, holder, "down", 1500)
		sh := nw.Shaper("relay0")
		done := make(chan struct{})
		var activeWhileDown int64 // read after done
		go func() {
			defer close(done)
			time.Sleep(time.Second)
			sh.SetDown(true)
			time.Sleep(5 * time.Second)
			// tors keep trying relay0 meanwhile; none may get through.
			activeWhileDown = sh.Stats().Active
			time.Sleep(5 * time.Second)
			sh.SetDown(false)
		}()
		before := sh.Stats()
		syncPersist(t, puller, holder, 6)
		<-done
		wantExactly(t, puller, holder)
		after := sh.Stats()
		dropped, refused := after.Dropped-before.Dropped, after.Refused-before.Refused
		t.Logf("relay0 while down: %d open connections dropped, %d refused", dropped, refused)
		if dropped+refused == 0 {
			t.Error("relay0 going down touched no connection: the fault was not exercised")
		}
		if activeWhileDown != 0 {
			t.Errorf("relay0 had %d open connections while down", activeWhileDown)
		}
	})
}

// resets sums the injected resets of every shaper of nw.
func resets(nw *testnet.Network) int64 {
	var n int64
	for _, node := range nw.ShapedNodes() {
		n += nw.Shaper(node).Stats().Reset
	}
	return n
}

// syncPersist syncs until a sync finishes without error, at most attempts
// times, as a caller that must get the data across would: under injected
// faults any failure may be transient. Failures are logged.
func syncPersist(t *testing.T, from, to *cluster.Agent, attempts int) localapi.SyncResult {
	t.Helper()
	for i := 1; ; i++ {
		r, err := syncOnce(t, from, to)
		if r.Error == "" && err == nil {
			return r
		}
		if i == attempts {
			t.Fatalf("%s → %s: %d syncs failed, last: %s (%s)", from.Name, to.Name, i, r.Error, r.ErrorKind)
		}
		t.Logf("attempt %d: %s (%s) after %.1fs (received %d); retrying", i, r.Error, r.ErrorKind, r.DurationMs/1000, r.Received)
		time.Sleep(2 * time.Second)
	}
}

// TestTestnetUpProfileCLI: `testnet up --profile slow` leaves a network and
// its shaper process running after the command returns; status names the
// profile and the shaper; down stops every process; an unknown profile is
// refused with its name.
func TestTestnetUpProfileCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private Tor network")
	}
	root := t.TempDir()
	dir := filepath.Join(root, "net")
	if _, stderr, err := mm(t, root, "", "testnet", "up", "--dir", dir, "--profile", "lan"); err == nil || !strings.Contains(stderr, `"lan"`) {
		t.Fatalf("up --profile lan: %v %s", err, stderr)
	}
	out, stderr, err := mm(t, root, "", "--json", "testnet", "up", "--dir", dir, "--profile", "slow")
	if err != nil {
		t.Fatal(err, stderr)
	}
	t.Cleanup(func() { mm(t, root, "", "testnet", "down", "--dir", dir) })
	var info testnet.Info
	if err := json.Unmarshal([]byte(out), &info); err != nil || info.Profile != testnet.ProfileSlow {
		t.Fatalf("up output %q: %v", out, err)
	}
	out, stderr, err = mm(t, root, "", "--json", "testnet", "status", "--dir", dir)
	if err != nil {
		t.Fatal(err, stderr)
	}
	var st struct {
		Profile   string
		Running   bool
		Processes []struct {
			Node    string
			PID     int
			Running bool
		}
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err, out)
	}
	var shaper int
	for _, p := range st.Processes {
		if p.Node == "shaper" && p.Running {
			shaper = p.PID
		}
	}
	if st.Profile != "slow" || !st.Running || shaper == 0 {
		t.Fatalf("status = %s; want profile slow, running, with a shaper process", out)
	}
	if _, stderr, err := mm(t, root, "", "testnet", "down", "--dir", dir); err != nil {
		t.Fatal(err, stderr)
	}
	for _, p := range st.Processes {
		if platform.Alive(p.PID) {
			if _, ok := testnet.NodeProcess(p.PID, dir); ok {
				t.Errorf("%s (pid %d) still running after down", p.Node, p.PID)
			}
		}
	}
}

// syncLong is syncOnce with a longer bound than run's 3 minutes: a 5 MB
// sync at ~100 KB/s legitimately takes minutes.
func syncLong(t *testing.T, from, to *cluster.Agent, limit time.Duration) (localapi.SyncResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--config-dir", from.Dir, "--json", "sync", to.ID.OnionAddress())
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var s localapi.SyncSummary
	if jerr := json.Unmarshal([]byte(out.String()), &s); jerr != nil || len(s.Peers) != 1 {
		t.Fatalf("sync output %q: %v (%v; stderr %s)", out.String(), jerr, err, errb.String())
	}
	return s.Peers[0], err
}
