package localapi

import (
	"encoding/json"
	"testing"
)

func TestSummarizeSumsOverPeers(t *testing.T) {
	s := Summarize([]SyncResult{
		{PeerID: "a", Received: 3, Rejected: 1, Sent: 2},
		{PeerID: "b", Received: 4, Sent: 5, Error: "boom", ErrorKind: "timeout"}, // partial counts count
	})
	if s.Received != 7 || s.Rejected != 1 || s.Sent != 7 || s.Failed != 1 || len(s.Peers) != 2 {
		t.Fatalf("summary %+v", s)
	}
	b, _ := json.Marshal(s)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"received", "rejected", "sent", "failed", "peers"} {
		if _, ok := m[k]; !ok {
			t.Errorf("summary JSON lacks %q: %s", k, b)
		}
	}
	if e := Summarize(nil); e.Peers == nil {
		t.Error("no peers must print [] not null")
	}
}
