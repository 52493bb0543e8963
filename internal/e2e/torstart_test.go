package e2e

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/cluster"
	"github.com/mmogit/mmogit/internal/localapi"
)

// mmogitIn runs the CLI on a config dir and returns stdout and stderr.
func mmogitIn(t *testing.T, dir string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--config-dir", dir}, args...)...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// TestTorStartStop: `tor start` returns once the background agent's onion
// service is published. Its stderr is not a terminal here, so it prints
// one line per phase (no redrawn bar) and ends with "published"; `tor
// stop` ends the agent.
func TestTorStartStop(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bg")
	if _, err := cluster.Prepare(cluster.AgentOptions{Bin: bin, Dir: dir, Name: "bg"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mmogitIn(t, dir, "tor", "stop") })
	tn := testnetDir(t) // starts the private network if it is not up yet
	start := time.Now()
	_, stderr, err := mmogitIn(t, dir, "tor", "start", "--testnet", tn)
	if err != nil {
		t.Fatalf("tor start: %v\n%s", err, stderr)
	}
	t.Logf("tor start → published in %.1fs; stderr:\n%s", time.Since(start).Seconds(), stderr)
	if strings.Contains(stderr, "\r") {
		t.Errorf("progress redrawn although stderr is not a terminal: %q", stderr)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "onion service published after ") {
		t.Errorf("tor start's last line is %q, want the publication", last)
	}
	out, _, err := mmogitIn(t, dir, "--json", "tor", "status")
	if err != nil {
		t.Fatal(err)
	}
	var st localapi.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil || !st.Published || st.BootstrapProgress != 100 {
		t.Fatalf("status after tor start: %s (%v)", out, err)
	}
	if _, stderr, err := mmogitIn(t, dir, "tor", "stop"); err != nil {
		t.Fatalf("tor stop: %v\n%s", err, stderr)
	}
	if _, _, err := mmogitIn(t, dir, "tor", "status"); err == nil {
		t.Error("status answers after tor stop")
	} else if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitNotRunningCode {
		t.Errorf("status without an agent: %v, want exit status %d", err, exitNotRunningCode)
	}
}

// exitNotRunningCode is the CLI's exit status when no agent runs.
const exitNotRunningCode = 3
