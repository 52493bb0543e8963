package e2e

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/cluster"
	"github.com/mmogit/mmogit/internal/localapi"
)

// restart stops an agent and starts it again on the same config dir,
// without bootstrap peers, and waits until it is ready.
func restart(t *testing.T, a *cluster.Agent) {
	t.Helper()
	if err := a.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := a.Start(cluster.AgentOptions{Bin: bin, Testnet: testnetDir(t), Verbose: true}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := a.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestKnownPeersAfterRestart: B learns A by syncing with it. Restarted
// without --bootstrap, B rejoins the network through its saved peers: it
// connects to A by itself, discovers A's advertisement in the DHT, and a
// sync with every known peer reaches A.
func TestKnownPeersAfterRestart(t *testing.T) {
	ag := startAgents(t, agentSpec{name: "a", services: []string{"memory_sync"}}, agentSpec{name: "b"})
	a, b := ag[0], ag[1]
	post(t, a, "before the restart")
	syncWith(t, b, a)
	restart(t, b)
	post(t, a, "after the restart")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	var last localapi.Status
	for {
		st, err := b.Client.Status(ctx)
		if err == nil {
			if st.PeersConnected > 0 {
				break
			}
			last = st
		}
		if ctx.Err() != nil {
			t.Fatalf("restarted agent did not reconnect to its saved peer: %+v\n%s", last, b.Tail(40))
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("b reconnected to a %.1fs after its restart", time.Since(start).Seconds())
	if _, err := pollDiscover(ctx, t, b, "memory_sync", func(ads []localapi.Advertisement) string {
		if !slices.ContainsFunc(ads, func(ad localapi.Advertisement) bool { return ad.OnionAddress == a.ID.OnionAddress() }) {
			return "a's advertisement not found"
		}
		return ""
	}); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, b, "--json", "sync") // every known peer: a, from peers.json
	if err != nil {
		t.Fatal(err)
	}
	s := parseSyncSummary(t, out)
	if len(s.Peers) != 1 || s.Failed != 0 || s.Received != 1 {
		t.Fatalf("sync with known peers after restart: %s", out)
	}
	wantMessages(t, b, "before the restart", "after the restart")
}
