package bench

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/mmogit/mmogit/internal/agent"
	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/memory"
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
	back  int64
	added int // memories the receiver stored
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
	s, err := holder.h.Host().NewStream(network.WithAllowLimitedConn(ctx, "sync"), recv.h.ID(), agent.SyncProtocol)
	if err != nil {
		return syncSample{}, fmt.Errorf("bench: open sync stream: %w", err)
	}
	defer s.Close()
	st, err := syncproto.Sync(ctx, s, holder.store, syncOptions(holder.id, recv.h.ID()))
	if err != nil {
		s.Reset()
		return syncSample{}, fmt.Errorf("bench: sync: %w", err)
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
	return syncSample{dur: time.Since(t0), bytes: st.BytesSent, back: st.BytesReceived, added: in.stats.Added}, nil
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

// syncSamples are one pair's three transfers of the same bytes.
type syncSamples struct {
	sync   syncSample // syncproto + git stores over libp2p
	stream syncSample // the bytes over a libp2p stream, no sync protocol
	raw    syncSample // the bytes over the raw transport
}

// measureSync times a full sync of the holder's memories, then pushes as
// many bytes (those the holder sent) one way over a libp2p stream and over
// the raw transport; want is how many memories the receiver must store.
func measureSync(ctx context.Context, p syncPair, want int) (syncSamples, error) {
	var r syncSamples
	var err error
	if r.sync, err = timedSync(ctx, p.holder, p.recv); err != nil {
		return r, err
	}
	if r.sync.added != want {
		return r, fmt.Errorf("bench: %s sync stored %d memories, want %d", p.kind, r.sync.added, want)
	}
	if r.stream, err = timedPush(ctx, p.dialStream, r.sync.bytes); err != nil {
		return r, err
	}
	r.raw, err = timedPush(ctx, p.dialRaw, r.sync.bytes)
	return r, err
}

func syncRows(kind string, r syncSamples) []Row {
	mb := float64(r.sync.bytes) / 1e6
	return []Row{
		NewRow("sync_"+kind, "MB/s", r.sync.mbps(), r.raw.mbps(),
			fmt.Sprintf("%d memories; %.1f MB holder→receiver / sync time (the receiver's %.0f KB back not counted) "+
				"vs a raw one-way push of the same %.1f MB", r.sync.added, mb, float64(r.sync.back)/1e3, mb)),
		Solo("sync_"+kind+"_memories", "memories/s", float64(r.sync.added)/r.sync.dur.Seconds(),
			fmt.Sprintf("%.1fs for the full sync", r.sync.dur.Seconds())),
		NewRow("stream_"+kind, "MB/s", r.stream.mbps(), r.raw.mbps(),
			fmt.Sprintf("%.1f MB over one libp2p stream (Noise+yamux), no sync protocol, vs raw", mb)),
	}
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
