package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/cluster"
	"github.com/mmogit/mmogit/internal/config"
	"github.com/mmogit/mmogit/internal/localapi"
	"github.com/mmogit/mmogit/internal/platform"
	"github.com/mmogit/mmogit/internal/testnet"
)

func syncWith(t *testing.T, from, to *cluster.Agent) localapi.SyncResult {
	t.Helper()
	out, err := run(t, from, "--json", "sync", to.ID.OnionAddress())
	if err != nil {
		t.Fatal(err)
	}
	r := parseSyncOne(t, out)
	if r.Error != "" {
		t.Fatalf("%s → %s sync failed: %s (%s)", from.Name, to.Name, r.Error, r.ErrorKind)
	}
	return r
}

// parseSyncSummary decodes `mmogit --json sync` output: one object with
// the counts summed over the peers and the per-peer results, whose sums
// it checks.
func parseSyncSummary(t *testing.T, out string) localapi.SyncSummary {
	t.Helper()
	var keys map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &keys); err != nil {
		t.Fatalf("sync output is not a JSON object: %q: %v", out, err)
	}
	for _, k := range []string{"received", "rejected", "sent", "failed", "peers"} {
		if _, ok := keys[k]; !ok {
			t.Fatalf("sync output lacks %q: %s", k, out)
		}
	}
	var s localapi.SyncSummary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("sync output %q: %v", out, err)
	}
	var recv, rej, sent, failed int
	for _, r := range s.Peers {
		recv, rej, sent = recv+r.Received, rej+r.Rejected, sent+r.Sent
		if r.Error != "" {
			failed++
		}
	}
	if recv != s.Received || rej != s.Rejected || sent != s.Sent || failed != s.Failed {
		t.Fatalf("sync summary does not add up: %s", out)
	}
	return s
}

// parseSyncOne is parseSyncSummary for a sync with one peer.
func parseSyncOne(t *testing.T, out string) localapi.SyncResult {
	t.Helper()
	s := parseSyncSummary(t, out)
	if len(s.Peers) != 1 {
		t.Fatalf("sync output has %d peers, want 1: %s", len(s.Peers), out)
	}
	return s.Peers[0]
}

func wantMessages(t *testing.T, a *cluster.Agent, texts ...string) {
	t.Helper()
	valid, invalid := messages(t, a)
	for _, s := range texts {
		if !valid[s] {
			t.Errorf("%s lacks %q (has %d valid)", a.Name, s, len(valid))
		}
	}
	if invalid != 0 {
		t.Errorf("%s holds %d invalid messages", a.Name, invalid)
	}
}

// TestTwoAgentsSyncOverOnion: two tor-only agents sync both ways over their
// onion services, and a second sync with nothing new moves almost nothing.
func TestTwoAgentsSyncOverOnion(t *testing.T) {
	// bob's config dir has a space, like /home/J Doe/.mmogit: tor's
	// ControlSocket and the ADD_ONION unix target both need care for it.
	ag := startAgents(t, agentSpec{name: "alice"}, agentSpec{name: "bob smith"})
	alice, bob := ag[0], ag[1]
	post(t, alice, "alice 1", "alice 2")
	post(t, bob, "bob 1")

	out, err := run(t, bob, "--json", "tor", "connect", alice.ID.OnionAddress())
	if err != nil {
		t.Fatal(err)
	}
	var cr localapi.ConnectResult
	if err := json.Unmarshal([]byte(out), &cr); err != nil {
		t.Fatal(err)
	}
	if cr.PeerID != alice.ID.PeerID().String() || cr.Transport != "tor" || !strings.HasPrefix(cr.Addr, "/onion3/") {
		t.Errorf("connect result %+v: want alice's peer ID over /onion3", cr)
	}
	t.Logf("connect over onion: %.0f ms, rtt %.1f ms", cr.ConnectMs, cr.RTTMillis)

	r := syncWith(t, bob, alice)
	if r.Received != 2 || r.Sent != 1 || r.Rejected != 0 {
		t.Errorf("first sync %+v: want received 2, sent 1", r)
	}
	wantMessages(t, bob, "alice 1", "alice 2", "bob 1")
	wantMessages(t, alice, "alice 1", "alice 2", "bob 1")

	again := syncWith(t, bob, alice)
	if again.Received != 0 || again.Sent != 0 {
		t.Errorf("second sync moved messages: %+v", again)
	}
	if again.BytesSent+again.BytesRecv > r.BytesSent+r.BytesRecv {
		t.Errorf("incremental sync moved %d bytes, more than the first (%d)", again.BytesSent+again.BytesRecv, r.BytesSent+r.BytesRecv)
	}
	t.Logf("first sync %d+%d bytes, second %d+%d bytes", r.BytesSent, r.BytesRecv, again.BytesSent, again.BytesRecv)

	// New circuits on request (SIGNAL NEWNYM through the agent).
	if out, err := run(t, bob, "--json", "tor", "rotate"); err != nil || !strings.Contains(out, "deferred_ms") {
		t.Errorf("tor rotate: %v %s", err, out)
	}

	// Bob now knows Alice, and `peers` says how he reached her.
	out, err = run(t, bob, "--json", "peers")
	if err != nil {
		t.Fatal(err)
	}
	var ps []localapi.Peer
	json.Unmarshal([]byte(out), &ps)
	if len(ps) != 1 || ps[0].PeerID != alice.ID.PeerID().String() || ps[0].Transport != "tor" || ps[0].LastSeen.IsZero() {
		t.Errorf("peers = %+v", ps)
	}
	for _, p := range ps {
		for _, a := range p.Addrs {
			if !strings.HasPrefix(a, "/onion3/") {
				t.Errorf("tor-only agent recorded a non-onion address %s", a)
			}
		}
	}
}

// TestThreeAgentsConverge: three agents, each syncing only with a hub, end
// up with the same messages.
func TestThreeAgentsConverge(t *testing.T) {
	ag := startAgents(t, agentSpec{name: "hub"}, agentSpec{name: "left"}, agentSpec{name: "right"})
	hub, left, right := ag[0], ag[1], ag[2]
	post(t, hub, "from hub")
	post(t, left, "from left 1", "from left 2")
	post(t, right, "from right")
	syncWith(t, left, hub)
	syncWith(t, right, hub)
	// The human form streams progress from the agent and prints counts.
	out, err := run(t, left, "sync", hub.ID.OnionAddress()) // picks up what right brought to the hub
	if err != nil || !strings.Contains(out, "received 1, sent 0, rejected 0") {
		t.Fatalf("human sync: %v\n%s", err, out)
	}
	all := []string{"from hub", "from left 1", "from left 2", "from right"}
	for _, a := range ag {
		wantMessages(t, a, all...)
	}
}

// TestTorKilledRecovers: the agent's tor is killed; the agent restarts it,
// republishes the onion service, and a later sync succeeds.
func TestTorKilledRecovers(t *testing.T) {
	ag := startAgents(t, agentSpec{name: "victim"}, agentSpec{name: "peer"})
	victim, peer := ag[0], ag[1]
	post(t, peer, "before the crash")
	syncWith(t, victim, peer)

	pid, err := victim.TorPID()
	if err != nil {
		t.Fatalf("victim's tor pid: %v", err)
	}
	p, _ := os.FindProcess(pid)
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var st localapi.Status
	for {
		st, err = victim.Client.Status(ctx)
		if err == nil && st.TorRestarts >= 1 && st.Published {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("agent did not recover: %+v %v", st, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("tor killed; agent republished after %.1fs", time.Since(killed).Seconds())
	newPid, err := victim.TorPID()
	if err != nil || newPid == pid {
		t.Errorf("tor not restarted: pid %d → %d (%v)", pid, newPid, err)
	}
	post(t, peer, "after the crash")
	// Both directions: the victim dials out through its new tor, and the
	// peer reaches the republished onion service.
	syncWith(t, victim, peer)
	post(t, victim, "victim is back")
	syncWith(t, peer, victim)
	wantMessages(t, victim, "before the crash", "after the crash", "victim is back")
	wantMessages(t, peer, "victim is back")
}

// TestSecondAgentRefused: a second agent on the same config dir exits with
// a clear message and does not disturb the first.
func TestSecondAgentRefused(t *testing.T) {
	a := startAgents(t, agentSpec{name: "only"})[0]
	_, err := run(t, a, "agent", "run")
	if err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("second agent: %v", err)
	}
	if _, err := a.Client.Status(context.Background()); err != nil {
		t.Fatalf("first agent disturbed: %v", err)
	}
}

// TestHybridFallsBackToDirect: a hybrid agent whose peer's onion is
// unreachable falls back to the peer's direct address, and warns that the
// peer now sees its IP address.
func TestHybridFallsBackToDirect(t *testing.T) {
	port := freePort(t)
	direct := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)
	hybrid := func(c *config.Config) {
		c.Transport = config.Hybrid
		c.HybridTimeout = config.Duration(20 * time.Second)
		c.Listen = []string{direct}
	}
	target := startAgents(t, agentSpec{name: "target", configure: hybrid})[0]
	post(t, target, "reached directly")

	// The client knows the target by an onion address whose port the
	// target does not serve (tor answers "unreachable") and by its direct
	// address, as a peer book entry from an earlier discovery would.
	root := t.TempDir()
	o := cluster.AgentOptions{Bin: bin, Dir: filepath.Join(root, "client"), Name: "client", Testnet: testnetDir(t), Configure: func(c *config.Config) {
		c.Transport = config.Hybrid
		c.HybridTimeout = config.Duration(20 * time.Second)
		c.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	}, Verbose: true}
	client, err := cluster.Prepare(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := cluster.TrustEachOther(target, client); err != nil {
		t.Fatal(err)
	}
	onion := strings.TrimSuffix(target.ID.OnionAddress(), ".onion")
	book := fmt.Sprintf(`[{"peer_id":%q,"onion_address":%q,"addrs":[%q,%q]}]`, target.ID.PeerID(), target.ID.OnionAddress(),
		fmt.Sprintf("/onion3/%s:7999", onion), direct)
	if err := os.WriteFile(filepath.Join(client.Dir, "peers.json"), []byte(book), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := client.Start(o); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		client.Stop(context.Background())
		if t.Failed() {
			t.Logf("client log:\n%s", client.Tail(60))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := client.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	r := syncWithID(t, client, target)
	if r.Received != 1 {
		t.Errorf("sync %+v", r)
	}
	logb, _ := os.ReadFile(client.Log)
	if !strings.Contains(string(logb), "sees this agent's IP address") {
		t.Errorf("no IP-exposure warning in the client's log:\n%s", client.Tail(40))
	}
	out, err := run(t, client, "--json", "peers")
	if err != nil {
		t.Fatal(err)
	}
	var ps []localapi.Peer
	json.Unmarshal([]byte(out), &ps)
	if len(ps) != 1 || ps[0].Transport != "direct" || !ps[0].Connected {
		t.Errorf("peers after fallback: %+v", ps)
	}
}

func syncWithID(t *testing.T, from, to *cluster.Agent) localapi.SyncResult {
	t.Helper()
	out, err := run(t, from, "--json", "sync", to.ID.PeerID().String())
	if err != nil {
		t.Fatal(err)
	}
	r := parseSyncOne(t, out)
	if r.Error != "" {
		t.Fatalf("sync failed: %s", r.Error)
	}
	return r
}

// TestAttachToRunningTor: an agent configured with tor.attach uses an
// already running tor (here the private network's client, with cookie
// auth over its control port) instead of starting its own, publishes its
// onion service there, and leaves that tor running when it stops.
func TestAttachToRunningTor(t *testing.T) {
	info := testnet.Shared(t).Info()
	attach := func(c *config.Config) {
		c.Tor.Attach = &config.Attach{Control: info.Control, Socks: info.Socks, CookiePath: info.Cookie}
	}
	ag := startAgents(t, agentSpec{name: "attached", configure: attach}, agentSpec{name: "own"})
	attached, own := ag[0], ag[1]
	if _, err := os.Stat(filepath.Join(attached.Dir, "tor-data")); err == nil {
		t.Error("attached agent created its own tor data dir")
	}
	post(t, attached, "via the system tor")
	syncWith(t, own, attached) // reaches the onion service published on the attached tor
	syncWith(t, attached, own) // dials out through the attached tor's SOCKS port
	wantMessages(t, own, "via the system tor")
	if err := attached.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The tor we attached to is not ours to stop.
	for _, pid := range info.PIDs {
		if !platform.Alive(pid) {
			t.Errorf("testnet tor %d gone after the attached agent stopped", pid)
		}
	}
}
