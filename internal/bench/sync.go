package bench

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/mmogit/mmogit/internal/agent"
	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/memory"
	"github.com/mmogit/mmogit/internal/p2p"
	"github.com/mmogit/mmogit/internal/syncproto"
)

// makeMemories signs n memories of about size bytes of content each, one
// second apart, by id. The content is random text (base64), so neither
// tor's nor git's work is flattered by repetition.
func makeMemories(id *identity.Identity, n, size int) []memory.Message {
	rng := rand.New(rand.NewChaCha8([32]byte{'m', 'm', 'o', 'g', 'i', 't'}))
	raw := make([]byte, size*3/4)
	t0 := time.Now().Add(-time.Duration(n) * time.Second)
	msgs := make([]memory.Message, n)
	for i := range msgs {
		for j := 0; j+8 <= len(raw); j += 8 {
			binary.LittleEndian.PutUint64(raw[j:], rng.Uint64())
		}
		content := fmt.Sprintf("bench memory %d: %s", i, base64.StdEncoding.EncodeToString(raw))
		msgs[i] = memory.Sign(id.Private, content, t0.Add(time.Duration(i)*time.Second))
	}
	return msgs
}

// openStore opens (creating) a memory repository under dir.
func openStore(dir, name string) (*memory.Store, error) {
	st, err := memory.Open(filepath.Join(dir, name))
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return st, nil
}

// syncSample is one timed sync from a holder to a receiver.
type syncSample struct {
	dur time.Duration
	// bytes went from the holder to the receiver: for a sync, the sync
	// protocol bytes the holder sent (hello, inventory, the memories); for
	// a push, what was pushed. Throughput counts these only, so a sync and
	// the raw one-way push of its bytes compare like for like.
	bytes int64
	// back went the other way: the receiver's sync protocol bytes (its
	// hello, inventory and requests); 0 for a push.
	back      int64
	added     int     // memories the receiver stored
	sentAdded int     // memories the holder stored (sync_small)
	rtts      float64 // round trips the protocol counted (holder side)
}

// total is the sync protocol bytes in both directions.
func (s syncSample) total() int64 { return s.bytes + s.back }

// mbps is the sample's holder→receiver throughput in MB/s (10^6 bytes).
func (s syncSample) mbps() float64 { return float64(s.bytes) / 1e6 / s.dur.Seconds() }

// timedSync runs one sync session from holder (which must already be
// connected to recv) on a new stream and waits until recv has stored what
// it received: the time a user waits for `mmogit sync`.
func timedSync(ctx context.Context, holder, recv *peerHost) (syncSample, error) {
	t0 := time.Now()
	st, err := openSync(ctx, holder, recv)
	if err != nil {
		return syncSample{}, err
	}
	var in syncOutcome
	select {
	case in = <-recv.synced:
	case <-ctx.Done():
		return syncSample{}, fmt.Errorf("bench: waiting for the receiver: %w", ctx.Err())
	}
	if in.err != nil {
		return syncSample{}, fmt.Errorf("bench: receiver: %w", in.err)
	}
	// The receiver's handler returns after our Sync; its time counts.
	return syncSample{dur: time.Since(t0), bytes: st.BytesSent, back: st.BytesReceived, added: in.stats.Added, rtts: st.RoundTrips, sentAdded: st.Added}, nil
}

// openSync runs the agent's outbound sync: a lazily negotiated
// /mmogit/sync/3.0.0 stream (connecting first if needed, without the
// identify wait) and one session.
func openSync(ctx context.Context, holder, recv *peerHost) (syncproto.Stats, error) {
	s, err := holder.h.OpenStream(ctx, peer.AddrInfo{ID: recv.h.ID()}, agent.SyncProtocol3)
	if err != nil {
		return syncproto.Stats{}, fmt.Errorf("bench: open sync stream: %w", err)
	}
	defer s.Close()
	st, err := syncproto.Sync(ctx, s, holder.store, syncOptions(holder.id, recv.h.ID()))
	if err != nil {
		s.Reset()
		return st, fmt.Errorf("bench: sync: %w", err)
	}
	return st, nil
}

// timedPush pushes n bytes raw to the sink on a connection dial opens; the
// dial itself is not timed, as the sync's connection is not either.
func timedPush(ctx context.Context, dial dialFunc, n int64) (syncSample, error) {
	c, err := dial(ctx)
	if err != nil {
		return syncSample{}, err
	}
	defer c.Close()
	t0 := time.Now()
	if err := pushRaw(ctx, c, n); err != nil {
		return syncSample{}, err
	}
	return syncSample{dur: time.Since(t0), bytes: n}, nil
}

// rawConn is a TCP connection, a SOCKS stream or a libp2p stream.
type rawConn interface {
	deadlineRW
	Close() error
}

// dialFunc opens a rawConn to a raw-protocol server.
type dialFunc func(context.Context) (rawConn, error)

// syncPair is a holder with memories and an empty receiver, connected.
type syncPair struct {
	holder, recv *peerHost
	kind         string   // "onion" or "direct"
	dialRaw      dialFunc // the raw server, through the same tor (or TCP)
}

// dialStream opens a raw-protocol libp2p stream from the holder to the
// receiver over their existing connection.
func (p syncPair) dialStream(ctx context.Context) (rawConn, error) {
	s, err := p.holder.h.Host().NewStream(ctx, p.recv.h.ID(), rawProtocol)
	if err != nil {
		return nil, fmt.Errorf("bench: raw stream: %w", err)
	}
	return s, nil
}

// syncSamples are one pair's rounds of three transfers of the same bytes.
type syncSamples struct {
	sync   []syncSample // syncproto + git stores over libp2p
	stream []syncSample // the bytes over a libp2p stream, no sync protocol
	raw    []syncSample // the bytes over the raw transport
}

// measureSync times rounds full syncs of the holder's memories, each into a
// new empty receiver store, each followed by pushes of as many bytes (those
// the holder sent) one way over a libp2p stream and over the raw
// transport; want is how many memories the receiver must store. The
// receiver keeps the last round's store.
func measureSync(ctx context.Context, p syncPair, want, rounds int, dir string, progress func(string, ...any)) (syncSamples, error) {
	var r syncSamples
	for i := range rounds {
		st, err := openStore(dir, fmt.Sprintf("recv-%s-%d", p.kind, i))
		if err != nil {
			return r, err
		}
		p.recv.store = st
		s, err := timedSync(ctx, p.holder, p.recv)
		if err != nil {
			return r, err
		}
		if s.added != want {
			return r, fmt.Errorf("bench: %s sync stored %d memories, want %d", p.kind, s.added, want)
		}
		stream, err := timedPush(ctx, p.dialStream, s.bytes)
		if err != nil {
			return r, err
		}
		raw, err := timedPush(ctx, p.dialRaw, s.bytes)
		if err != nil {
			return r, err
		}
		r.sync, r.stream, r.raw = append(r.sync, s), append(r.stream, stream), append(r.raw, raw)
		progress("sync over %s, round %d/%d: %.1fs, %.2f MB/s vs raw %.2f MB/s", p.kind, i+1, rounds, s.dur.Seconds(), s.mbps(), raw.mbps())
	}
	return r, nil
}

func mbpsOf(s []syncSample) []float64 {
	out := make([]float64, len(s))
	for i, x := range s {
		out[i] = x.mbps()
	}
	return out
}

func syncRows(kind string, r syncSamples) []Row {
	last := r.sync[len(r.sync)-1]
	mb := float64(last.bytes) / 1e6
	rate := make([]float64, len(r.sync))
	for i, s := range r.sync {
		rate[i] = float64(s.added) / s.dur.Seconds()
	}
	row := RoundsRow("sync_"+kind, "MB/s", mbpsOf(r.sync), mbpsOf(r.raw), 0,
		fmt.Sprintf("%d memories into an empty store; %.1f MB holder→receiver / sync time until stored (the receiver's %.0f KB back not counted) "+
			"vs a raw one-way push of the same %.1f MB through the same tor", last.added, mb, float64(last.back)/1e3, mb))
	if kind == "onion" {
		row = row.WithTarget(false, 0.9)
	}
	return []Row{
		row,
		RoundsRow("sync_"+kind+"_memories", "memories/s", rate, nil, 0, "memories stored per second of full sync (no baseline)"),
		RoundsRow("stream_"+kind, "MB/s", mbpsOf(r.stream), mbpsOf(r.raw), 0,
			fmt.Sprintf("%.1f MB over one libp2p stream (Noise+yamux), no sync protocol, vs raw", mb)),
	}
}

// measureSmall times rounds of sync_small: one new memory on each side of
// stores that share the rest, synced over a new onion connection (new
// client host, new rendezvous circuit), until both sides stored their
// one; vs a raw SOCKS connect to the echo service and one round trip.
// rtts_sync_small is the round trips the protocol counted, raw = 1.
func measureSmall(ctx context.Context, e *env, p syncPair, rounds int, progress func(string, ...any)) ([]Row, error) {
	var ours, raw, rtts []float64
	shared := 0
	for i := range rounds {
		if _, err := p.holder.store.Post(ctx, p.holder.id.Private, fmt.Sprintf("small round %d, holder", i)); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		if _, err := p.recv.store.Post(ctx, p.recv.id.Private, fmt.Sprintf("small round %d, receiver", i)); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		var err error
		if shared, err = holderCount(ctx, p.holder.store); err != nil {
			return nil, err
		}
		client, err := e.newTorClient(ctx, p.holder.id, p.holder.store, nil)
		if err != nil {
			return nil, err
		}
		s, err := func() (syncSample, error) {
			defer client.close()
			rctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
			defer cancel()
			t0 := time.Now()
			if _, err := client.h.ConnectOnion(p2p.WithoutIdentifyWait(rctx), p.recv.id.OnionAddress(), onionPort); err != nil {
				return syncSample{}, err
			}
			s, err := timedSync(rctx, client, p.recv)
			s.dur = time.Since(t0)
			return s, err
		}()
		if err != nil {
			return nil, err
		}
		if s.added != 1 || s.sentAdded != 1 {
			return nil, fmt.Errorf("bench: sync_small stored %d and %d memories, want 1 each", s.added, s.sentAdded)
		}
		r, err := rawConnectOnce(ctx, e)
		if err != nil {
			return nil, err
		}
		ours, raw, rtts = append(ours, s.dur.Seconds()), append(raw, r.total.Seconds()), append(rtts, s.rtts)
		progress("sync_small round %d/%d: %.3fs (%.1f round trips) vs raw %.3fs", i+1, rounds, s.dur.Seconds(), s.rtts, r.total.Seconds())
	}
	return []Row{
		RoundsRow("sync_small", "s", ours, raw, 0, fmt.Sprintf("1 new memory each side of %d shared; new onion connection + sync until both stored "+
			"vs raw SOCKS connect + 1 round trip", shared-1)).WithTarget(true, 1.5),
		RoundsRow("rtts_sync_small", "round trips", rtts, nil, 1, "circuit round trips from stream open to the deltas stored, counted by the "+
			"protocol on the dialer (Stats.RoundTrips: deepest causal hop / 2): its Hello, the listener's push, its push, the listener's Bye "+
			"confirming it; raw = 1"),
	}, nil
}

// measureIncremental adds one memory to the holder and syncs again.
func measureIncremental(ctx context.Context, p syncPair, full syncSample) (Row, error) {
	if _, err := p.holder.store.Post(ctx, p.holder.id.Private, "one more memory"); err != nil {
		return Row{}, fmt.Errorf("bench: %w", err)
	}
	inc, err := timedSync(ctx, p.holder, p.recv)
	if err != nil {
		return Row{}, err
	}
	if inc.added != 1 {
		return Row{}, fmt.Errorf("bench: incremental sync stored %d memories, want 1", inc.added)
	}
	note := fmt.Sprintf("1 new of %d, %.2fs; both directions (%d sent, %d back); baseline = both directions of the first full sync",
		full.added+1, inc.dur.Seconds(), inc.bytes, inc.back)
	return NewRow("sync_incremental_bytes", "bytes", float64(inc.total()), float64(full.total()), note), nil
}
