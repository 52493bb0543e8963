package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/testnet"
)

// buildMmogit builds the mmogit binary the bench command and its agents
// run.
func buildMmogit(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mmogit")
	_, file, _, _ := runtime.Caller(0)
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/mmogit")
	cmd.Dir = filepath.Join(filepath.Dir(file), "..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// requiredRows are the rows other tools rely on, with their units (issue
// "Interface other tools rely on").
var requiredRows = map[string]string{
	"connect_onion":   "s",
	"sync_small":      "s",
	"rtts_sync_small": "round trips",
	"sync_onion":      "MB/s",
	"sync_direct":     "MB/s",
	"discover_onion":  "s",
	"agent_rss":       "MB",
}

// TestBenchCommand runs `mmogit --json bench` end to end on the shared
// private network with small sizes (3 agents, 3 peers, 30 memories, a
// 4-host direct network) and checks the wire form: an array of rows with
// the required names and units, every number positive, ratio =
// ours/baseline. It is a smoke test of every measurement, measureAgents
// included; it checks structure, not speed.
func TestBenchCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("private Tor network and real agents: slow")
	}
	nw := testnet.Shared(t)
	bin := buildMmogit(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--json", "bench", "--testnet", nw.Info().Dir, "--dir", t.TempDir(),
		"--memories", "30", "--memory-bytes", "300", "--iterations", "1", "--sync-rounds", "1",
		"--discover-sizes", "3", "--loaded-peers", "3", "--direct-scale", "4")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("mmogit bench: %v\nstderr:\n%s", err, stderr.String())
	}
	t.Logf("mmogit bench took %.1fs", time.Since(t0).Seconds())
	var rows []struct {
		Name     string   `json:"name"`
		Ours     *float64 `json:"ours"`
		Baseline *float64 `json:"baseline"`
		Unit     string   `json:"unit"`
		Ratio    *float64 `json:"ratio"`
	}
	var raw []map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &raw); err != nil {
		t.Fatalf("stdout is not a JSON array: %v\n%s", err, stdout.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), &rows); err != nil {
		t.Fatal(err)
	}
	var names []string
	for i, r := range rows {
		names = append(names, r.Name)
		for _, k := range []string{"name", "ours", "baseline", "unit", "ratio"} {
			if _, ok := raw[i][k]; !ok {
				t.Errorf("row %q has no %q field", r.Name, k)
			}
		}
		if r.Ours == nil || !(*r.Ours > 0) {
			t.Errorf("row %q: ours = %v, want > 0", r.Name, r.Ours)
			continue
		}
		if r.Baseline == nil {
			if r.Ratio != nil {
				t.Errorf("row %q: ratio %v without a baseline", r.Name, *r.Ratio)
			}
			continue
		}
		if !(*r.Baseline > 0) || r.Ratio == nil {
			t.Errorf("row %q: baseline %v, ratio %v", r.Name, *r.Baseline, r.Ratio)
			continue
		}
		if want := *r.Ours / *r.Baseline; math.Abs(*r.Ratio-want) > 1e-9*want {
			t.Errorf("row %q: ratio %v, want ours/baseline = %v", r.Name, *r.Ratio, want)
		}
	}
	for name, unit := range requiredRows {
		i := slices.Index(names, name)
		if i < 0 {
			t.Errorf("no %q row in %v", name, names)
			continue
		}
		if rows[i].Unit != unit {
			t.Errorf("%s: unit %q, want %q", name, rows[i].Unit, unit)
		}
	}
	for _, name := range []string{
		"discover_onion_N3", "discover_direct_N3", "discover_direct_N4",
		"agent_rss_3peers", "agent_goroutines", "agent_goroutines_3peers", "tor_rss_3peers",
		"onion_encode_ns", "onion_verify_ns", "ad_verify_per_s",
	} {
		if !slices.Contains(names, name) {
			t.Errorf("no %q row in %v", name, names)
		}
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("progress:\n%s\nstdout:\n%s", stderr.String(), stdout.String())
	}
}

// TestDirectScale grows an in-process direct-TCP network 2 → 5 and checks
// that discovery at each size finds everyone else.
func TestDirectScale(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got, err := measureDirectScale(ctx, []int{2, 5}, func(string, ...any) {})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].n != 2 || got[1].n != 5 {
		t.Fatalf("samples for sizes %+v, want 2 and 5", got)
	}
	for _, d := range got {
		if len(d.calls) != 3 || !(d.median() > 0) {
			t.Errorf("N=%d: calls %v", d.n, d.calls)
		}
	}
}

// TestOptionSizes pins how the discovery sizes are normalised.
func TestOptionSizes(t *testing.T) {
	o := Options{Dir: "d", Bin: "b", DiscoverSizes: []int{20, 5, 10, 5}, DirectScale: 10}
	if err := o.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.DiscoverSizes, []int{5, 10, 20}) || !slices.Equal(o.directSizes(), []int{5, 10, 20}) {
		t.Fatalf("sizes %v, direct %v", o.DiscoverSizes, o.directSizes())
	}
	o = Options{Dir: "d", Bin: "b"}
	if err := o.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.directSizes(), []int{5, 10, 20, 100}) || o.LoadedPeers != 20 {
		t.Fatalf("defaults: direct %v, loaded %d", o.directSizes(), o.LoadedPeers)
	}
	if err := (&Options{Dir: "d", Bin: "b", DiscoverSizes: []int{1, 5}}).setDefaults(); err == nil {
		t.Fatal("a size of 1 was accepted")
	}
}
