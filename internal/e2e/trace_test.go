package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/cluster"
	"github.com/mmogit/mmogit/internal/localapi"
	"github.com/mmogit/mmogit/internal/sctrace"
	"github.com/mmogit/mmogit/internal/torctl"
)

// traceSyscalls are the calls the anonymity trace records: every way to
// send to an address, and every way to make or replace a process, so the
// task tree can be rebuilt.
// socket, bind and listen show whether the agent ever listens on TCP.
const traceSyscalls = "connect,sendto,sendmsg,sendmmsg,execve,clone,clone3,fork,vfork,socket,bind,listen"

// straceArgs checks that strace is installed and can trace here, and
// returns its options. It skips the test only when ptrace is refused (a
// container without CAP_SYS_PTRACE or with a seccomp profile that blocks
// it), and not even then under CI=true: CI must not lose the anonymity
// proof silently. A missing strace is a broken CI image and fails.
func straceArgs(t *testing.T, traceFile string) (string, []string) {
	t.Helper()
	path, err := exec.LookPath("strace")
	if err != nil {
		t.Fatalf("strace not installed (scripts/deps.sh installs it; apt-get install -y strace): %v", err)
	}
	if out, err := exec.Command(path, "-f", "-qq", "-o", os.DevNull, "true").CombinedOutput(); err != nil {
		msg := fmt.Sprintf("strace cannot trace in this environment (ptrace refused?): `strace -f true`: %v: %s", err, strings.TrimSpace(string(out)))
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s; under CI=true the anonymity trace must run, not skip: give the CI container CAP_SYS_PTRACE "+
				"(docker run --cap-add SYS_PTRACE) and a seccomp profile that allows ptrace", msg)
		}
		t.Skip(msg)
	}
	// -q, not -qq: "+++ exited" lines let the task tree tell a reused
	// task ID from its previous owner. -e signal=none drops signal noise.
	args := []string{"-f", "-q", "-e", "trace=" + traceSyscalls, "-e", "signal=none", "-o", traceFile}
	// With seccomp-bpf the traced tasks stop only at the traced calls, not
	// at every futex and epoll_wait of the Go runtime and tor, which keeps
	// the traced agent near its normal speed on a loaded 2-core machine.
	if exec.Command(path, "-f", "--seccomp-bpf", "-qq", "-o", os.DevNull, "true").Run() == nil {
		args = append([]string{"--seccomp-bpf"}, args...)
	}
	return path, args
}

// writeWrapper writes an executable that runs the mmogit binary under
// strace, so cluster starts a traced agent without knowing about strace.
// cluster gives the wrapper (that is, strace) Pdeathsig; the agent gets its
// own through setpriv, because strace 6.1 has no --kill-on-exit and an
// agent outliving its tracer would keep running with its traced calls
// failing (ENOSYS under --seccomp-bpf). setpriv is returned so the trace
// check knows its execve.
func writeWrapper(t *testing.T, dir, strace string, args []string) (wrapper, setpriv string) {
	t.Helper()
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
	cmd := append([]string{strace}, args...)
	cmd = append(cmd, "--")
	if p, err := exec.LookPath("setpriv"); err == nil {
		setpriv = p
		cmd = append(cmd, p, "--pdeathsig", "KILL", "--")
	} else {
		t.Logf("setpriv not found: the traced agent would outlive a killed test: %v", err)
	}
	cmd = append(cmd, bin)
	var b strings.Builder
	b.WriteString("#!/bin/sh\nexec")
	for _, a := range cmd {
		b.WriteString(" " + q(a))
	}
	b.WriteString(" \"$@\"\n")
	wrapper = filepath.Join(dir, "mmogit-under-strace")
	if err := os.WriteFile(wrapper, []byte(b.String()), 0o755); err != nil {
		t.Fatal(err)
	}
	return wrapper, setpriv
}

// TestTorOnlyTrace runs a tor-only agent under strace while it starts,
// connects to a second agent, syncs, advertises, discovers and stops, then
// checks from the trace that none of the agent's own tasks (tor's tasks
// excluded by ancestry, not by address) sent anything anywhere but its own
// tor's SOCKS socket and unix sockets in its config dir: no DNS, no IPv6,
// no relay, no peer. It also checks that neither the agent nor its tor
// ever listens on TCP (the onion service forwards to a unix socket in the
// config dir; tor's SOCKS and control ports are unix sockets in its data
// dir, so no other local user can use the agent's circuits or its client
// authorization keys) and that `tor connect` refuses IP and DNS addresses
// without storing them.
func TestTorOnlyTrace(t *testing.T) {
	start := time.Now()
	work := t.TempDir()
	traceFile := filepath.Join(work, "agent.strace")
	straceBin, sargs := straceArgs(t, traceFile)

	other := startAgents(t, agentSpec{name: "other", services: []string{"memory_sync"}})[0]
	post(t, other, "other's memory")

	wrapper, setpriv := writeWrapper(t, work, straceBin, sargs)
	o := cluster.AgentOptions{
		Bin: wrapper, Dir: filepath.Join(work, "traced"), Name: "traced",
		Testnet: testnetDir(t), Bootstrap: []string{other.ID.OnionAddress()}, Verbose: true,
	}
	a, err := cluster.Prepare(o)
	if err != nil {
		t.Fatal(err)
	}
	post(t, a, "traced agent's memory")
	if err := cluster.TrustEachOther(other, a); err != nil {
		t.Fatal(err)
	}
	if err := a.Start(o); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.Stop(context.Background())
		if t.Failed() {
			t.Logf("log of %s:\n%s", a.Name, a.Tail(60))
		}
		checkLogClean(t, a)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if _, err := a.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	ready := time.Since(start)
	socksPaths, socks, control := torListeners(ctx, t, a)
	if fi, err := os.Stat(filepath.Join(a.Dir, "onion.sock")); err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("onion service target: %v, %v: want the 0600 unix socket <config>/onion.sock", fi, err)
	}

	// The status page is open (chromium polling it, `mmogit ui` asking
	// the agent) for the whole trace; only the agent is traced.
	var pg *page
	if _, err := findChromium(); err == nil || os.Getenv("CI") == "true" {
		pg = openPage(t, a)
	} else {
		t.Logf("tracing without the status page open: %v", err)
	}
	exerciseTraced(t, a, other)
	if pg != nil {
		pageActions(t, pg, other)
	}

	if err := a.Stop(ctx); err != nil {
		t.Fatalf("traced agent did not stop cleanly: %v", err)
	}
	logPaths, logPorts := logSocksListeners(t, a)
	socks = append(socks, logPorts...)
	slices.Sort(socks)
	socks = slices.Compact(socks)
	socksPaths = append(socksPaths, logPaths...)
	slices.Sort(socksPaths)
	socksPaths = slices.Compact(socksPaths)
	t.Logf("agent ready after %.1fs; run and stop done after %.1fs; tor SOCKS sockets %v, SOCKS ports %v, control ports %v",
		ready.Seconds(), time.Since(start).Seconds(), socksPaths, socks, control)
	if len(socks) > 0 || len(control) > 0 {
		t.Errorf("LEAK: the agent's tor listened on TCP: SOCKS ports %v, control ports %v; want only unix sockets", socks, control)
	}

	checkTrace(t, traceFile, setpriv, sctrace.Policy{ConfigDir: a.Dir, SocksPaths: socksPaths, SocksPorts: socks, ControlPorts: control})
}

// refuseDirectTargets: a tor-only agent asked to connect to a peer's IP or
// DNS multiaddr (after it is connected to that peer over onion) fails with
// the policy error naming tor mode and the address, dials nothing (the
// trace would show a DNS lookup or loopback connect) and stores nothing.
func refuseDirectTargets(t *testing.T, a, other *cluster.Agent) {
	t.Helper()
	id := other.ID.PeerID().String()
	for _, addr := range []string{"/ip4/127.0.0.1/tcp/7420", "/dns4/example.com/tcp/7420"} {
		out, err := run(t, a, "tor", "connect", addr+"/p2p/"+id)
		if err == nil || !strings.Contains(err.Error(), "tor mode") || !strings.Contains(err.Error(), addr) {
			t.Errorf("tor connect %s on a tor-only agent: %q, %v: want the policy error naming tor mode and the address", addr, out, err)
		}
	}
	b, err := os.ReadFile(filepath.Join(a.Dir, "peers.json"))
	if err != nil {
		t.Fatal(err)
	}
	if s := string(b); strings.Contains(s, "/ip4/") || strings.Contains(s, "/ip6/") || strings.Contains(s, "/dns") {
		t.Errorf("a tor-only agent's peers.json holds a non-onion address:\n%s", s)
	}
}

// checkNoTCPListen fails the test if any task of the agent or of its tor
// called listen on an AF_INET or AF_INET6 socket. The family comes from
// the socket call that returned the descriptor (or a later bind) in the
// same program (the agent's tasks or tor's, told apart by ancestry, since
// each has its own descriptor table), so a descriptor number reused for a
// unix socket is not mistaken for the TCP one before it.
func checkNoTCPListen(t *testing.T, tree *sctrace.Tree) {
	t.Helper()
	type ev struct {
		e   sctrace.Event
		pid int
		tor bool
	}
	var evs []ev
	for _, k := range tree.Tasks {
		for _, e := range k.Events {
			switch e.Syscall {
			case "socket", "bind", "listen":
				evs = append(evs, ev{e, k.PID, tree.Marked(k, e.Line, sctrace.IsTorProgram)})
			}
		}
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].e.Line < evs[j].e.Line })
	type fdKey struct {
		tor bool
		fd  string
	}
	family := map[fdKey]string{} // descriptor → AF_*
	listens := map[bool]int{}    // by tor
	for _, x := range evs {
		e, args := x.e, x.e.ArgList()
		if !e.OK() || len(args) < 2 {
			continue
		}
		switch e.Syscall {
		case "socket":
			family[fdKey{x.tor, strings.Fields(e.Ret)[0]}] = args[0]
		case "bind":
			if a, err := sctrace.ParseSockaddr(args[1]); err == nil {
				family[fdKey{x.tor, args[0]}] = a.Family
			}
		case "listen":
			listens[x.tor]++
			if f := family[fdKey{x.tor, args[0]}]; f == sctrace.AFInet || f == sctrace.AFInet6 {
				who := "agent"
				if x.tor {
					who = "agent's tor"
				}
				t.Errorf("LEAK: the %s listens on TCP (%s, task %d, trace line %d): listen(%s)", who, f, x.pid, e.Line, e.Args)
			}
		}
	}
	if listens[false] == 0 {
		t.Error("the trace shows no listen call of the agent at all (not even its unix sockets): socket/bind/listen were not traced")
	}
	if listens[true] == 0 {
		t.Error("the trace shows no listen call of tor at all (not even its SOCKS and control sockets): tor's socket/bind/listen were not traced")
	}
}

// exerciseTraced drives the traced agent through everything that makes it
// talk: connect, sync both ways, advertise, discover.
func exerciseTraced(t *testing.T, a, other *cluster.Agent) {
	t.Helper()
	out, err := run(t, a, "--json", "tor", "connect", other.ID.OnionAddress())
	if err != nil {
		t.Fatal(err)
	}
	var cr localapi.ConnectResult
	if err := json.Unmarshal([]byte(out), &cr); err != nil {
		t.Fatalf("connect output %q: %v", out, err)
	}
	if cr.PeerID != other.ID.PeerID().String() || cr.Transport != "tor" || !strings.HasPrefix(cr.Addr, "/onion3/") {
		t.Fatalf("connect result %+v: want the other agent over /onion3", cr)
	}
	refuseDirectTargets(t, a, other)

	r := syncWith(t, a, other) // fails the test on a sync error
	if r.Received < 1 || r.Sent < 1 {
		t.Errorf("sync %+v: want messages both ways", r)
	}
	wantMessages(t, a, "other's memory", "traced agent's memory")
	wantMessages(t, other, "other's memory", "traced agent's memory")

	// The other way round: the other agent opens the sync stream (on the
	// libp2p connection it already has, or by dialing the traced agent's
	// onion service), so the trace covers the serving side too.
	post(t, other, "other's second memory")
	if in := syncWith(t, other, a); in.Sent < 1 {
		t.Errorf("inbound sync %+v: want the new memory sent", in)
	}
	wantMessages(t, a, "other's second memory")

	if _, err := run(t, a, "--json", "tor", "advertise", "--services", "memory_sync"); err != nil {
		t.Fatal(err)
	}
	// The other agent advertises on its own schedule (retrying every 5 s
	// until its DHT has a peer), so poll.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, err := run(t, a, "--json", "tor", "discover", "memory_sync")
		if err != nil {
			t.Fatal(err)
		}
		var ads []localapi.Advertisement
		if err := json.Unmarshal([]byte(out), &ads); err != nil {
			t.Fatalf("discover output %q: %v", out, err)
		}
		if slices.ContainsFunc(ads, func(ad localapi.Advertisement) bool { return ad.OnionAddress == other.ID.OnionAddress() }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("discover never found the other agent; last answer %s", out)
		}
		time.Sleep(2 * time.Second)
	}
}

// torListeners asks the agent's own tor where its listeners are: its
// SOCKS unix sockets (the agent's only way out), and any TCP SOCKS or
// control port (there must be none). It fails the test if tor has a
// listener of any kind that is not a unix socket, or if its SOCKS socket
// is not the private one in its data dir.
func torListeners(ctx context.Context, t *testing.T, a *cluster.Agent) (socksPaths []string, socks, control []int) {
	t.Helper()
	dataDir := filepath.Join(a.Dir, "tor-data")
	c, err := torctl.Dial(ctx, "unix", filepath.Join(dataDir, "control.sock"))
	if err != nil {
		t.Fatalf("agent's tor control: %v", err)
	}
	defer c.Close()
	if err := c.Authenticate(ctx, torctl.AuthOptions{}); err != nil {
		t.Fatal(err)
	}
	keys := []string{"net/listeners/socks", "net/listeners/control", "net/listeners/or", "net/listeners/dir",
		"net/listeners/dns", "net/listeners/trans", "net/listeners/natd", "net/listeners/httptunnel", "net/listeners/extor"}
	info, err := c.GetInfo(ctx, keys...)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		for _, l := range listenerList(info[k]) {
			if !strings.HasPrefix(l, "unix:") {
				t.Errorf("LEAK: the agent's tor listens on %s (%s): want unix sockets only", l, k)
			}
		}
	}
	for _, l := range listenerList(info["net/listeners/socks"]) {
		if p, ok := strings.CutPrefix(l, "unix:"); ok {
			socksPaths = append(socksPaths, p)
		}
	}
	socks = listenerPorts(t, info["net/listeners/socks"])
	control = listenerPorts(t, info["net/listeners/control"])
	want := filepath.Join(dataDir, "socks.sock")
	if !slices.Equal(socksPaths, []string{want}) || len(socks) > 0 {
		t.Errorf("agent's tor SOCKS listeners %q: want only the unix socket %s", info["net/listeners/socks"], want)
	}
	if len(socksPaths) == 0 {
		t.FailNow()
	}
	if fi, err := os.Stat(want); err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("SOCKS socket %s: %v, %v: want a socket only its owner can use", want, fi, err)
	}
	if fi, err := os.Stat(dataDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("tor data dir %s: %v, %v: want mode 0700", dataDir, fi, err)
	}
	return socksPaths, socks, control
}

// listenerList splits a GETINFO net/listeners/* value: space-separated
// quoted addresses; unix sockets appear as "unix:/path".
func listenerList(v string) []string {
	var out []string
	for _, f := range strings.Fields(v) {
		if s, err := strconv.Unquote(f); err == nil {
			f = s
		}
		out = append(out, f)
	}
	return out
}

// listenerPorts reads the 127.0.0.1 ports of a GETINFO net/listeners/*
// value.
func listenerPorts(t *testing.T, v string) []int {
	t.Helper()
	var ports []int
	for _, s := range listenerList(v) {
		if p, ok := strings.CutPrefix(s, "127.0.0.1:"); ok {
			n, err := strconv.Atoi(p)
			if err != nil {
				t.Fatalf("listener %q: %v", s, err)
			}
			ports = append(ports, n)
		}
	}
	return ports
}

var socksLogRe = regexp.MustCompile(`Opened Socks listener connection \(ready\) on (?:127\.0\.0\.1:(\d+)|(?:unix:)?"?(/[^\s"]+))`)

// logSocksListeners returns every SOCKS unix socket and TCP port tor's log
// says it opened, so a tor restarted by the supervisor during the run is
// covered too.
func logSocksListeners(t *testing.T, a *cluster.Agent) (paths []string, ports []int) {
	f, err := os.Open(filepath.Join(a.Dir, "tor-data", "tor.log"))
	if err != nil {
		t.Logf("tor log: %v", err)
		return nil, nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := socksLogRe.FindStringSubmatch(sc.Text())
		switch {
		case m == nil:
		case m[1] != "":
			n, _ := strconv.Atoi(m[1])
			ports = append(ports, n)
		default:
			paths = append(paths, m[2])
		}
	}
	return paths, ports
}

// checkTrace parses the trace and asserts the tor-only property.
// setpriv, if not empty, is the wrapper program run before the agent.
func checkTrace(t *testing.T, traceFile, setpriv string, p sctrace.Policy) {
	t.Helper()
	f, err := os.Open(traceFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	evs, err := sctrace.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	tree := sctrace.Build(evs)
	if keep := os.Getenv("MMOGIT_KEEP_TRACE"); keep != "" {
		// For a human: keep the raw trace after the temp dir is gone.
		if b, err := os.ReadFile(traceFile); err == nil {
			os.WriteFile(keep, b, 0o600)
		}
	}
	if real, err := filepath.EvalSymlinks(p.ConfigDir); err == nil {
		p.ConfigDir = real
	}

	// The trace must really cover the agent and its tor.
	var execs []string
	sawAgent, sawTor := false, false
	for _, k := range tree.Tasks {
		for _, x := range k.Execs {
			execs = append(execs, fmt.Sprintf("%d %s", k.PID, x.Path))
			sawAgent = sawAgent || x.Path == bin
			sawTor = sawTor || sctrace.IsTorProgram(x.Path)
			if x.Path != bin && x.Path != setpriv && !sctrace.IsTorProgram(x.Path) {
				t.Errorf("agent executed an unexpected program: %s", x.Path)
			}
		}
	}
	if !sawAgent || !sawTor {
		t.Fatalf("trace (%d events, %d tasks) lacks the agent's or tor's execve; execs: %v", len(evs), len(tree.Tasks), execs)
	}

	checkNoTCPListen(t, tree)

	fs := sctrace.Analyze(tree, p, sctrace.IsTorProgram)
	agent, tor := sctrace.Count(fs, false), sctrace.Count(fs, true)
	t.Logf("trace: %d events, %d tasks (%d task IDs reused), execs %v", len(evs), len(tree.Tasks), tree.Reused, execs)
	t.Logf("agent (non-tor tasks) by destination class and call: %s", fmtCounts(agent))
	t.Logf("tor subtree by destination class and call: %s", fmtCounts(tor))

	for _, f := range fs {
		switch {
		case f.Tor:
		case !f.Class.Allowed():
			t.Errorf("LEAK: %s", f)
		case f.Class == sctrace.Netlink:
			t.Logf("netlink (kernel, not network): %s", f)
		}
	}
	if agent[string(sctrace.TorSocksUnix)+" connect"] == 0 {
		t.Error("the agent never connected to its tor's SOCKS socket: the trace does not cover the onion dials")
	}
	if n := agent[string(sctrace.TorSocks)+" connect"]; n > 0 {
		t.Errorf("LEAK: the agent connected %d times to a TCP SOCKS port of its tor: want the unix socket only", n)
	}
	if agent[string(sctrace.UnixConfigDir)+" connect"] == 0 && agent[string(sctrace.TorControl)+" connect"] == 0 {
		t.Error("the agent never connected to its tor's control socket")
	}
	if tor[string(sctrace.Loopback)+" connect"] == 0 {
		t.Error("tor's subtree made no connections to relays: the trace did not cover tor")
	}
}

func fmtCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "\n    %-40s %d", k, m[k])
	}
	return b.String()
}
