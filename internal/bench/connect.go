package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/mmogit/mmogit/internal/p2p"
)

// connectSample is one new agent→agent connection over an onion service,
// split into its phases.
type connectSample struct {
	socks   time.Duration // SOCKS dial: new rendezvous circuit + stream
	upgrade time.Duration // Noise + yamux after the SOCKS dial
	total   time.Duration // dial start → first byte echoed on a new stream
}

// rawSample is one raw connection: SOCKS dial, then the first echoed byte.
type rawSample struct {
	socks, total time.Duration
}

// measureConnectOnion times iterations new connections to target, ours and
// raw interleaved so both see the same network state, after one warm-up
// each (which fetches and caches the descriptors).
func measureConnectOnion(ctx context.Context, e *env, target *peerHost, iterations int) ([]Row, error) {
	if err := retryUnreachable(ctx, func() error { _, err := connectOnce(ctx, e, target); return err }); err != nil {
		return nil, err
	}
	if err := retryUnreachable(ctx, func() error { _, err := rawConnectOnce(ctx, e); return err }); err != nil {
		return nil, err
	}
	var ours []connectSample
	var raw []rawSample
	for range iterations {
		o, err := connectOnce(ctx, e, target)
		if err != nil {
			return nil, err
		}
		r, err := rawConnectOnce(ctx, e)
		if err != nil {
			return nil, err
		}
		ours, raw = append(ours, o), append(raw, r)
	}
	return connectRows(ours, raw), nil
}

func connectRows(ours []connectSample, raw []rawSample) []Row {
	sec := func(f func(i int) time.Duration, n int) []float64 {
		s := make([]float64, n)
		for i := range n {
			s[i] = f(i).Seconds()
		}
		return s
	}
	n, m := len(ours), len(raw)
	return []Row{
		RoundsRow("connect_onion", "s", sec(func(i int) time.Duration { return ours[i].total }, n),
			sec(func(i int) time.Duration { return raw[i].total }, m), 0,
			"new rendezvous circuit each; libp2p dial (SOCKS+Noise XX+yamux, no identify wait) + lazily negotiated stream to the first echoed byte "+
				"vs SOCKS connect + one request/response").WithTarget(true, 1.05),
		RoundsRow("connect_onion_socks", "s", sec(func(i int) time.Duration { return ours[i].socks }, n),
			sec(func(i int) time.Duration { return raw[i].socks }, m), 0, "SOCKS dial part only (same tor, same path)"),
		RoundsRow("connect_onion_libp2p_handshake", "s", sec(func(i int) time.Duration { return ours[i].upgrade }, n), nil, 0,
			"Noise XX + yamux over the circuit (baseline 0: raw has none)"),
	}
}

// connectOnce starts a new client host (new identity, new circuit), dials
// target's onion address and reads the first byte back on an echo stream.
func connectOnce(ctx context.Context, e *env, target *peerHost) (connectSample, error) {
	td := &timedDialer{}
	a, err := e.newTorClient(ctx, nil, nil, td)
	if err != nil {
		return connectSample{}, err
	}
	defer a.close()
	var upgraded time.Time
	var mu sync.Mutex
	a.h.Host().Network().Notify(&network.NotifyBundle{ConnectedF: func(network.Network, network.Conn) {
		mu.Lock()
		upgraded = time.Now()
		mu.Unlock()
	}})
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	t0 := time.Now()
	// As the agent's sync: no identify wait, the stream's protocol
	// proposal rides with its first byte.
	if _, err := a.h.ConnectOnion(p2p.WithoutIdentifyWait(ctx), target.id.OnionAddress(), onionPort); err != nil {
		return connectSample{}, err
	}
	if err := echoStream(ctx, a, target); err != nil {
		return connectSample{}, err
	}
	total := time.Since(t0)
	mu.Lock()
	defer mu.Unlock()
	return connectSample{socks: td.doneAt().Sub(t0), upgrade: upgraded.Sub(td.doneAt()), total: total}, nil
}

// echoStream opens a raw-protocol stream from a to b (lazily negotiated,
// as the agent's sync stream) and waits for the first echoed byte.
func echoStream(ctx context.Context, a, b *peerHost) error {
	s, err := a.h.OpenStream(ctx, peer.AddrInfo{ID: b.h.ID()}, rawProtocol)
	if err != nil {
		return fmt.Errorf("bench: echo stream: %w", err)
	}
	defer s.Close()
	return firstEcho(ctx, s)
}

// rawConnectOnce dials the raw echo service with fresh credentials and
// waits for the first echoed byte.
func rawConnectOnce(ctx context.Context, e *env) (rawSample, error) {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	t0 := time.Now()
	c, err := e.dialRaw(ctx)
	if err != nil {
		return rawSample{}, err
	}
	defer c.Close()
	dialed := time.Since(t0)
	if err := firstEcho(ctx, c); err != nil {
		return rawSample{}, err
	}
	return rawSample{socks: dialed, total: time.Since(t0)}, nil
}
