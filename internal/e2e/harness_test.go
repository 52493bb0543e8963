package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/cluster"
	"github.com/mmogit/mmogit/internal/config"
	"github.com/mmogit/mmogit/internal/memory"
	"github.com/mmogit/mmogit/internal/testnet"
)

// bin is the mmogit binary built once for the whole package (with -race,
// see TestMain).
var bin string

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "mmogit-e2e-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		bin = filepath.Join(dir, "mmogit")
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		// The agents run with the race detector so that checkLogClean's
		// "DATA RACE" check can fire; MMOGIT_E2E_RACE=0 builds without it.
		args := []string{"build", "-o", bin}
		if os.Getenv("MMOGIT_E2E_RACE") != "0" {
			args = append(args, "-race")
			if os.Getenv("GORACE") == "" {
				// The race runtime sleeps 1 s at exit by default: that
				// is 1 s per CLI call.
				os.Setenv("GORACE", "atexit_sleep_ms=0")
			}
		}
		cmd := exec.Command("go", append(args, "./cmd/mmogit")...)
		cmd.Dir = root
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: build mmogit:", err)
			return 1
		}
		defer testnet.CloseShared()
		return m.Run()
	}()
	os.Exit(code)
}

// agentSpec describes one agent of a test.
type agentSpec struct {
	name      string
	services  []string
	bootstrap []string
	configure func(*config.Config)
	// stranger keeps the agent out of the others' trust lists (and them
	// out of its own); all other agents of one startAgents trust each
	// other with read and write, as one party's agents would.
	stranger bool
}

// startAgents prepares and starts agents on the shared private network and
// waits until all are ready. They are stopped (and their logs printed on
// failure) when the test ends.
func startAgents(t *testing.T, specs ...agentSpec) []*cluster.Agent {
	t.Helper()
	return startAgentsOn(t, testnet.Shared(t).Info().Dir, specs...)
}

// startAgentsOn is startAgents on the private network in netDir (one of
// the test's own, e.g. with a bridge).
func startAgentsOn(t *testing.T, netDir string, specs ...agentSpec) []*cluster.Agent {
	t.Helper()
	root := t.TempDir()
	agents := make([]*cluster.Agent, len(specs))
	opts := make([]cluster.AgentOptions, len(specs))
	for i, s := range specs {
		opts[i] = cluster.AgentOptions{
			Bin: bin, Dir: filepath.Join(root, s.name), Name: s.name, Testnet: netDir,
			Services: s.services, Bootstrap: s.bootstrap, Configure: s.configure, Verbose: true,
		}
		a, err := cluster.Prepare(opts[i])
		if err != nil {
			t.Fatal(err)
		}
		agents[i] = a
	}
	var members []*cluster.Agent
	for i, a := range agents {
		if !specs[i].stranger {
			members = append(members, a)
		}
	}
	if err := cluster.TrustEachOther(members...); err != nil {
		t.Fatal(err)
	}
	for i, a := range agents {
		if err := a.Start(opts[i]); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := a.Stop(context.Background()); err != nil {
				t.Errorf("%s: %v", a.Name, err)
			}
			if t.Failed() {
				t.Logf("log of %s:\n%s", a.Name, a.Tail(60))
				t.Logf("tor log of %s:\n%s", a.Name, a.TorTail(30))
			}
			checkLogClean(t, a)
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, a := range agents {
		if _, err := a.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return agents
}

// checkLogClean fails the test if an agent panicked or raced.
func checkLogClean(t *testing.T, a *cluster.Agent) {
	b, _ := os.ReadFile(a.Log)
	for _, bad := range []string{"panic:", "DATA RACE", "fatal error:"} {
		if strings.Contains(string(b), bad) {
			t.Errorf("%s log contains %q:\n%s", a.Name, bad, a.Tail(80))
		}
	}
}

// post adds messages to an agent's repository directly (the agent reads the
// same repository; posting is safe while it runs).
func post(t *testing.T, a *cluster.Agent, texts ...string) {
	t.Helper()
	st, err := memory.Open(filepath.Join(a.Dir, "messages"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range texts {
		if _, err := st.Post(context.Background(), a.ID.Private, s); err != nil {
			t.Fatal(err)
		}
	}
}

// messages returns the valid message contents in an agent's repository and
// the number of invalid ones.
func messages(t *testing.T, a *cluster.Agent) (valid map[string]bool, invalid int) {
	t.Helper()
	st, err := memory.Open(filepath.Join(a.Dir, "messages"))
	if err != nil {
		t.Fatal(err)
	}
	all, err := st.All(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	valid = map[string]bool{}
	for _, e := range all {
		if e.Valid {
			valid[e.Message.Content] = true
		} else {
			invalid++
		}
	}
	return valid, invalid
}

// run runs the mmogit CLI against an agent's config dir and returns stdout.
func run(t *testing.T, a *cluster.Agent, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--config-dir", a.Dir}, args...)...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("mmogit %s: %w\nstderr: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), err
}

func testnetDir(t *testing.T) string { return testnet.Shared(t).Info().Dir }

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
