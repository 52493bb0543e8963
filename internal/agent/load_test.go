package agent_test

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/agent"
	"github.com/mmogit/mmogit/internal/config"
	"github.com/mmogit/mmogit/internal/memory"
	"github.com/mmogit/mmogit/internal/syncproto"
	"github.com/mmogit/mmogit/internal/testnet"
)

// Bounds of the load tests. They catch leaks and unbounded buffering, not
// slowness: the heap bound is several times what a run needs.
const (
	loadAgentMessages  = 200
	loadClientMessages = 3
	maxHeapInuse       = 300 * mib
	// maxHeapAfter bounds the heap once every client has gone (measured:
	// 32 MiB after a 209 MiB peak): a session that kept its buffers or
	// messages would hold most of the peak.
	maxHeapAfter    = 128 * mib
	goroutineMargin = 10
)

// TestLoadDirect has 100 peers sync with one agent over loopback TCP at the
// same moment.
func TestLoadDirect(t *testing.T) {
	ta := startAgent(t, agentSetup{cfg: directConfig(), messages: loadAgentMessages})
	runLoad(t, ta, envInt(t, "MMOGIT_LOAD_CLIENTS", 100), "", 10*time.Second)
}

// TestLoadOnion has 20 tor-only peers sync with one agent through its
// onion service on the private Tor network, all at once, each on its own
// circuit (SOCKS isolation) through the network's client tor.
func TestLoadOnion(t *testing.T) {
	if testing.Short() {
		t.Skip("private Tor network: slow")
	}
	nw := testnet.Shared(t)
	cfg := config.Default() // tor only
	cfg.Services = nil
	ta := startAgent(t, agentSetup{cfg: cfg, torrc: nw.Info().ClientTorrc, messages: loadAgentMessages})
	runLoad(t, ta, envInt(t, "MMOGIT_ONION_LOAD_CLIENTS", 20), nw.SocksAddr(), 20*time.Second)
}

func envInt(t testing.TB, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive number", name, s)
	}
	return n
}

// runLoad starts n clients, releases them at once to connect and sync with
// ta, and checks that every message went where it should, that the heap
// stayed bounded and that no goroutine outlived the clients.
func runLoad(t *testing.T, ta *testAgent, n int, socksAddr string, settle time.Duration) {
	baseline := settledGoroutines()
	heapBase := heapInuse()

	clients := make([]*client, n)
	for i := range clients {
		clients[i] = newClient(t, loadClientMessages, socksAddr)
		ta.grant(t, clients[i].id, true, true)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	hs := sampleHeap()
	start := make(chan struct{})
	stats := make([]syncproto.Stats, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			stats[i], errs[i] = c.sync(ctx, ta)
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(t0)
	peak := hs.Stop()

	failed := 0
	for i, err := range errs {
		if err != nil {
			failed++
			t.Errorf("client %d: %v", i, err)
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d syncs failed", failed, n)
	}

	want := append([]memory.Message{}, ta.own...)
	fromClients := map[string]bool{}
	for _, c := range clients {
		want = append(want, c.own...)
		for _, m := range c.own {
			fromClients[m.ID()] = true
		}
	}
	checkStore(t, "agent", agent.StoreOf(ta.Agent), want, nil)
	received := 0
	for i, c := range clients {
		// A client may also get messages of clients that synced before it.
		checkStore(t, "client "+strconv.Itoa(i), c.store, append(append([]memory.Message{}, c.own...), ta.own...), fromClients)
		received += stats[i].Added
	}

	during := runtime.NumGoroutine()
	for _, c := range clients {
		c.host.Close()
	}
	after := awaitGoroutines(t, baseline, goroutineMargin, settle)
	heapAfter := heapInuse()
	t.Logf("%d clients synced in %v; agent holds %d messages; clients received %d", n, elapsed.Round(time.Millisecond), len(want), received)
	t.Logf("heap in use: %d MiB before, %d MiB peak, %d MiB after (GC); goroutines: %d baseline, %d with clients, %d after close",
		heapBase/mib, peak/mib, heapAfter/mib, baseline, during, after)
	if peak > maxHeapInuse {
		t.Errorf("heap in use peaked at %d MiB, bound %d MiB", peak/mib, maxHeapInuse/mib)
	}
	if heapAfter > maxHeapAfter {
		t.Errorf("heap in use after the clients left: %d MiB, bound %d MiB (memory kept after sessions ended)", heapAfter/mib, maxHeapAfter/mib)
	}
}
