package agent_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/mmogit/mmogit/internal/agent"
	"github.com/mmogit/mmogit/internal/memory"
	"github.com/mmogit/mmogit/internal/p2p"
	"github.com/mmogit/mmogit/internal/syncproto"
)

// stallingStore serves the first Get and blocks on every later one, so a
// session using it answers the first memory request and then goes silent.
type stallingStore struct {
	*memory.Store
	gets atomic.Int32
}

func (s *stallingStore) Get(ctx context.Context, ids []string) ([]memory.Message, error) {
	if s.gets.Add(1) > 1 {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return s.Store.Get(ctx, ids)
}

// TestFailedSyncReportsPartialCounts: the agent pulls 600 messages from a
// peer that answers the first request (512 messages) and then stalls. The
// sync fails with kind peer_stalled, and the result still says how many
// messages were received and stored before that.
func TestFailedSyncReportsPartialCounts(t *testing.T) {
	ta := startAgent(t, agentSetup{cfg: directConfig(), idle: abuseIdle})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	id := newIdentity(t)
	ta.grant(t, id, false, true)
	h, err := p2p.New(ctx, p2p.Config{Identity: id, Mode: p2p.ModeDirect, ListenTCP: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	st, err := memory.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	msgs := signed(id, "peer", 600)
	if _, err := st.Add(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	store := &stallingStore{Store: st}
	h.Host().SetStreamHandler(agent.SyncProtocol, func(s network.Stream) {
		defer s.Close()
		syncproto.Sync(ctx, s, store, syncproto.Options{Identity: id.Private, RequireAuth: true})
	})

	target := h.Addrs()[0].String() + "/p2p/" + id.PeerID().String()
	rs, err := ta.api.Sync(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 {
		t.Fatalf("results %+v", rs)
	}
	r := rs[0]
	t.Logf("%+v", r)
	if r.ErrorKind != "peer_stalled" {
		t.Errorf("kind %q, want peer_stalled: %s", r.ErrorKind, r.Error)
	}
	all, err := agent.StoreOf(ta.Agent).All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.Received == 0 || r.Received != len(all) || r.Received >= len(msgs) {
		t.Errorf("failed sync reports %d received; the agent stored %d of %d", r.Received, len(all), len(msgs))
	}
	if r.BytesRecv == 0 {
		t.Errorf("failed sync reports no bytes received")
	}
}
