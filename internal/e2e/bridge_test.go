package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/cluster"
	"github.com/mmogit/mmogit/internal/config"
	"github.com/mmogit/mmogit/internal/testnet"
	"github.com/mmogit/mmogit/internal/torctl"
)

// TestAgentThroughBridge: a real `mmogit agent run` with --use-bridges
// (tor.json has no bridge line: --testnet takes the network's) bootstraps
// into a private network only through its obfs4 bridge, publishes its
// onion service, and syncs both ways with an agent that joined the
// network directly. That it used the bridge is read from its own tor:
// the torrc it was given, the pluggable transport it runs, GETINFO
// circuit-status (every built circuit starts at the bridge) and tor.log.
// An agent given the same bridge with a wrong obfs4 cert never bootstraps.
//
// Snowflake bridges cannot be tested here: snowflake-client needs a
// broker and WebRTC proxies on the internet; the torrc for them is
// covered by the tor package's unit tests.
func TestAgentThroughBridge(t *testing.T) {
	if testing.Short() {
		t.Skip("private Tor network with an obfs4 bridge and two agents: slow (~1 min)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	t0 := time.Now()
	nw, err := testnet.Start(ctx, testnet.Options{Dir: t.TempDir(), Bridge: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nw.Close() })
	line := nw.BridgeLine()
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "obfs4" {
		t.Fatalf("bridge line %q", line)
	}
	bridgeFP := f[2]
	t.Logf("bridge network up in %v; bridge %s", time.Since(t0).Round(time.Millisecond), line)

	t.Run("wrong cert", func(t *testing.T) {
		bad := wrongCert(t, line)
		dir := filepath.Join(t.TempDir(), "badcert")
		o := cluster.AgentOptions{Bin: bin, Dir: dir, Name: "badcert", Testnet: nw.Info().Dir, Verbose: true,
			Configure: func(c *config.Config) {
				c.Tor.UseBridges = true
				c.Tor.Bridges = []string{bad}
				c.Tor.BootstrapTimeout = config.Duration(20 * time.Second)
			}}
		a, err := cluster.Prepare(o)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Start(o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Stop(context.Background()) })
		wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute)
		defer wcancel()
		start := time.Now()
		st, err := a.WaitReady(wctx)
		if err == nil {
			t.Fatalf("agent with a wrong bridge cert became ready: %+v", st)
		}
		tail := a.Tail(40)
		i := strings.Index(tail, "bootstrap stalled")
		if i < 0 {
			t.Fatalf("agent with a wrong bridge cert failed for another reason: %v", err)
		}
		if !strings.Contains(tail[i:], "cert=") {
			t.Errorf("the agent's error does not point at the bridge line: %s", firstLine(tail[i:]))
		}
		t.Logf("wrong cert: agent exited after %v: %s", time.Since(start).Round(time.Second), firstLine(tail[i:]))
		t.Logf("its tor log:\n%s", a.TorTail(8))
	})

	ag := startAgentsOn(t, nw.Info().Dir,
		agentSpec{name: "bridged", configure: func(c *config.Config) { c.Tor.UseBridges = true }},
		agentSpec{name: "direct"})
	bridged, direct := ag[0], ag[1]
	t.Logf("both agents ready %v after the network", time.Since(t0).Round(time.Millisecond))

	// Memories flow both ways: bridged dials out through the bridge, and
	// direct reaches bridged's onion service, published through it.
	post(t, bridged, "through the bridge 1")
	post(t, direct, "direct 1")
	if r := syncWith(t, bridged, direct); r.Received != 1 || r.Sent != 1 {
		t.Errorf("bridged → direct sync %+v: want received 1, sent 1", r)
	}
	post(t, bridged, "through the bridge 2")
	post(t, direct, "direct 2")
	if r := syncWith(t, direct, bridged); r.Received != 1 || r.Sent != 1 {
		t.Errorf("direct → bridged sync %+v: want received 1, sent 1", r)
	}
	all := []string{"through the bridge 1", "through the bridge 2", "direct 1", "direct 2"}
	wantMessages(t, bridged, all...)
	wantMessages(t, direct, all...)

	// The torrc the agent gave its tor.
	torrc := readLines(t, filepath.Join(bridged.Dir, "tor-data", "torrc"))
	for _, want := range []string{"UseBridges 1", "Bridge " + line} {
		if !slices.Contains(torrc, want) {
			t.Errorf("bridged agent's torrc lacks %q:\n%s", want, strings.Join(torrc, "\n"))
		}
	}
	pt := slices.IndexFunc(torrc, func(l string) bool { return strings.HasPrefix(l, "ClientTransportPlugin obfs4 exec ") })
	if pt < 0 {
		t.Errorf("bridged agent's torrc has no obfs4 transport:\n%s", strings.Join(torrc, "\n"))
	} else if base := filepath.Base(strings.Fields(torrc[pt])[3]); base != "lyrebird" && base != "obfs4proxy" {
		t.Errorf("obfs4 transport %q is neither lyrebird nor obfs4proxy", torrc[pt])
	}
	if slices.ContainsFunc(readLines(t, filepath.Join(direct.Dir, "tor-data", "torrc")), func(l string) bool { return strings.HasPrefix(l, "UseBridges") }) {
		t.Error("the direct agent's torrc uses bridges")
	}

	// Its tor runs the transport…
	if runtime.GOOS == "linux" {
		torPID, err := bridged.TorPID()
		if err != nil {
			t.Fatal(err)
		}
		kids := childComms(torPID)
		if !slices.ContainsFunc(kids, func(c string) bool { return strings.Contains(c, "obfs4") || strings.Contains(c, "lyrebird") }) {
			t.Errorf("bridged agent's tor (pid %d) runs no obfs4 transport; its children: %v", torPID, kids)
		}
		t.Logf("bridged agent's tor (pid %d) children: %v", torPID, kids)
	}

	// …is configured for bridges, and every circuit it built starts at
	// the bridge.
	c := agentControl(ctx, t, bridged)
	conf, err := c.GetConf(ctx, "UseBridges")
	if err != nil {
		t.Fatal(err)
	}
	if v := conf["UseBridges"]; len(v) != 1 || v[0] != "1" {
		t.Errorf("GETCONF UseBridges = %q", v)
	}
	info, err := c.GetInfo(ctx, "circuit-status")
	if err != nil {
		t.Fatal(err)
	}
	hops := firstHops(info["circuit-status"])
	if len(hops) == 0 {
		t.Fatalf("bridged agent's tor has no built circuits:\n%s", info["circuit-status"])
	}
	for _, h := range hops {
		if !strings.EqualFold(h, bridgeFP) {
			t.Errorf("a circuit of the bridged agent starts at %s, not at the bridge %s", h, bridgeFP)
		}
	}
	t.Logf("bridged agent: %d built circuits, all starting at the bridge %s", len(hops), bridgeFP)
	dinfo, err := agentControl(ctx, t, direct).GetInfo(ctx, "circuit-status")
	if err != nil {
		t.Fatal(err)
	}
	if dh := firstHops(dinfo["circuit-status"]); slices.ContainsFunc(dh, func(h string) bool { return strings.EqualFold(h, bridgeFP) }) {
		t.Errorf("the direct agent has circuits through the bridge: %v", dh)
	}

	// tor's own log names the bridge it learned.
	log, err := os.ReadFile(filepath.Join(bridged.Dir, "tor-data", "tor.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(log, []byte("new bridge descriptor")) || !bytes.Contains(bytes.ToUpper(log), []byte(bridgeFP)) {
		t.Errorf("bridged agent's tor.log does not show the bridge %s:\n%s", bridgeFP, bridged.TorTail(30))
	}
}

// wrongCert returns line with one character of its obfs4 cert changed
// inside the bridge's public key (the cert is the node ID, 20 bytes, then
// the key, 32 bytes, in unpadded base64).
func wrongCert(t *testing.T, line string) string {
	t.Helper()
	i := strings.Index(line, " cert=")
	if i < 0 || len(line) < i+len(" cert=")+45 {
		t.Fatalf("bridge line without a full cert: %q", line)
	}
	j := i + len(" cert=") + 40
	c := byte('A')
	if line[j] == 'A' {
		c = 'B'
	}
	return line[:j] + string(c) + line[j+1:]
}

// agentControl is an authenticated control connection to an agent's own
// tor, closed at the end of the test.
func agentControl(ctx context.Context, t *testing.T, a *cluster.Agent) *torctl.Conn {
	t.Helper()
	dir := filepath.Join(a.Dir, "tor-data")
	c, err := torctl.Dial(ctx, "unix", filepath.Join(dir, "control.sock"))
	if err != nil {
		t.Fatalf("%s's tor control: %v", a.Name, err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Authenticate(ctx, torctl.AuthOptions{CookiePath: filepath.Join(dir, "control_auth_cookie"), RequireSafeCookie: true}); err != nil {
		t.Fatal(err)
	}
	return c
}

// firstHops returns the fingerprint of the first hop of each BUILT
// circuit in a GETINFO circuit-status answer.
func firstHops(status string) []string {
	var hops []string
	for _, line := range strings.Split(status, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[1] != "BUILT" {
			continue
		}
		first, _, _ := strings.Cut(f[2], ",")
		first = strings.TrimPrefix(first, "$")
		if i := strings.IndexAny(first, "~="); i >= 0 {
			first = first[:i]
		}
		hops = append(hops, first)
	}
	return hops
}

// childComms returns the command names of pid's live children (Linux).
func childComms(pid int) []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		closeP := bytes.LastIndexByte(b, ')')
		openP := bytes.IndexByte(b, '(')
		if openP < 0 || closeP < openP {
			continue
		}
		rest := strings.Fields(string(b[closeP+1:]))
		if len(rest) < 2 || rest[0] == "Z" || rest[1] != strconv.Itoa(pid) {
			continue
		}
		out = append(out, string(b[openP+1:closeP]))
	}
	return out
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
