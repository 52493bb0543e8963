package agent_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestLastSeenOnConnect: a known peer's last-seen time is updated when it
// connects (here inbound, with no sync), in the API and in peers.json.
func TestLastSeenOnConnect(t *testing.T) {
	idB := newIdentity(t)
	old := time.Now().Add(-time.Hour).UTC()
	a := startAgent(t, agentSetup{cfg: directConfig(), before: func(dir string) {
		data, _ := json.Marshal([]map[string]any{{"peer_id": idB.PeerID().String(), "addrs": []string{}, "last_seen": old}})
		if err := os.WriteFile(filepath.Join(dir, "peers.json"), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}})
	b := startAgent(t, agentSetup{cfg: directConfig(), id: idB})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	target := a.addrs[0].String() + "/p2p/" + a.peerID().String()
	before := time.Now().Add(-time.Second)
	if _, err := b.api.Connect(ctx, target); err != nil {
		t.Fatal(err)
	}
	ps, err := a.api.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || !ps[0].Connected || ps[0].LastSeen.Before(before) {
		t.Fatalf("a's peers after b connected: %+v", ps)
	}
	// The saved time moved too (it is what `peers` shows once b is gone);
	// connection events are saved at the latest when the agent stops.
	a.stop()
	var recs []struct {
		LastSeen time.Time `json:"last_seen"`
	}
	data, _ := os.ReadFile(filepath.Join(a.dir, "peers.json"))
	if json.Unmarshal(data, &recs) != nil || len(recs) != 1 || recs[0].LastSeen.Before(before) {
		t.Fatalf("peers.json last_seen not updated on connect: %s", data)
	}
}
