package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/config"
)

// TestDirectP2P: the reference mmogit's direct mode, `p2p listen` and
// `p2p connect HOST:PORT`, syncs both ways over plain TCP. With the default
// transport (tor) both refuse unless --direct is given; `p2p listen`
// listens on 127.0.0.1 unless --host says otherwise.
func TestDirectP2P(t *testing.T) {
	root := t.TempDir()
	a, b := filepath.Join(root, "a"), filepath.Join(root, "b")
	for _, d := range []string{a, b} {
		if _, stderr, err := mm(t, d, "", "init", "--no-verify"); err != nil {
			t.Fatal(err, stderr)
		}
	}
	// Encrypted to each other, so each can read what it receives.
	onionA, _, _ := mm(t, a, "", "address", "--onion")
	onionB, _, _ := mm(t, b, "", "address", "--onion")
	mm(t, a, "", "post", "--to", strings.TrimSpace(onionB), "from a over tcp")
	mm(t, b, "", "post", "--to", strings.TrimSpace(onionA), "from b over tcp")
	// Each keeps what the other sends (and shows the other's posts).
	mm(t, a, "", "trust", "add", strings.TrimSpace(onionB), "--write")
	mm(t, b, "", "trust", "add", strings.TrimSpace(onionA), "--write")

	// Tor mode (no tor.json: the default) refuses both without --direct.
	for _, args := range [][]string{{"p2p", "listen", "--port", "0", "--once"}, {"p2p", "connect", "127.0.0.1:7420"}} {
		// A listener that is not refused would wait for a peer forever.
		rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
		cmd := exec.CommandContext(rctx, bin, append([]string{"--config-dir", a}, args...)...)
		var errb strings.Builder
		cmd.Stderr = &errb
		err := cmd.Run()
		rcancel()
		stderr := errb.String()
		if err == nil || !strings.Contains(stderr, "IP address") || !strings.Contains(stderr, "--direct") || !strings.Contains(stderr, `"tor"`) {
			t.Errorf("%v in tor mode: err %v, stderr %q: want a refusal explaining the peer would see the IP and naming --direct", args, err, stderr)
		}
	}
	// b chose direct transport in its tor.json: no flag needed.
	cfg := config.Default()
	cfg.Transport = config.Direct
	if err := config.Save(b, cfg); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	listen := exec.CommandContext(ctx, bin, "--config-dir", a, "--json", "p2p", "listen", "--direct", "--port", "0", "--once")
	stderr, _ := listen.StderrPipe()
	var out strings.Builder
	listen.Stdout = &out
	if err := listen.Start(); err != nil {
		t.Fatal(err)
	}
	// The listener prints its address on stderr: 127.0.0.1 by default.
	addr := ""
	sc := bufio.NewScanner(stderr)
	re := regexp.MustCompile(`listening for direct sync on (\S+:\d+)`)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			addr = m[1]
			break
		}
	}
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("listener address %q: want 127.0.0.1 by default", addr)
	}
	go func() {
		for sc.Scan() {
		}
	}()
	res, stderrB, err := mm(t, b, "", "--json", "p2p", "connect", addr)
	if err != nil {
		t.Fatal(err, stderrB)
	}
	if err := listen.Wait(); err != nil {
		t.Fatalf("listener: %v", err)
	}
	var r struct{ Received, Sent, Rejected int }
	if err := json.Unmarshal([]byte(res), &r); err != nil || r.Received != 1 || r.Sent != 1 {
		t.Fatalf("connect result %q: %v", res, err)
	}
	for _, d := range []string{a, b} {
		show, _, _ := mm(t, d, "", "show")
		for _, want := range []string{"from a over tcp", "from b over tcp"} {
			if !strings.Contains(show, want) {
				t.Errorf("%s lacks %q:\n%s", d, want, show)
			}
		}
	}
	if _, stderrB, err := mm(t, b, "", "p2p", "connect", "not-an-address"); err == nil || !strings.Contains(stderrB, "HOST:PORT") {
		t.Errorf("bad address: %v %s", err, stderrB)
	}
}
