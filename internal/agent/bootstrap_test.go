package agent_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestKnownPeersBootstrap: an agent started without bootstrap peers but
// with a saved peer (peers.json from an earlier run) connects to it on its
// own, so its DHT has someone to talk to.
func TestKnownPeersBootstrap(t *testing.T) {
	a := startAgent(t, agentSetup{cfg: directConfig()})
	var addrs []string
	for _, m := range a.addrs {
		addrs = append(addrs, m.String())
	}
	b := startAgent(t, agentSetup{cfg: directConfig(), before: func(dir string) {
		recs := []map[string]any{
			{"peer_id": a.peerID().String(), "addrs": addrs, "last_seen": time.Now().Add(-time.Hour)},
		}
		data, _ := json.Marshal(recs)
		if err := os.WriteFile(filepath.Join(dir, "peers.json"), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		if b.connectedPeers(ctx, t) > 0 && a.connectedPeers(ctx, t) > 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("agent with a saved peer did not connect to it:\n%s", b.log.buf.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
