package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/mmogit/mmogit/internal/discovery"
)

// scaleNode is one in-process agent of the direct-TCP scaling measurement:
// a direct-mode host from the agent's recipe (internal/p2p) and the
// agent's discovery (internal/discovery) on it, as `agent run` sets them
// up, without the store, local API and process around them.
type scaleNode struct {
	ph *peerHost
	d  *discovery.Discovery
}

func (n *scaleNode) close() {
	n.d.Close()
	n.ph.close()
}

// scaleParallel bounds how many nodes bootstrap or advertise at once.
const scaleParallel = 8

// measureDirectScale grows one in-process network of direct-mode hosts on
// TCP loopback through sizes (ascending) and at each size times Discover
// on the newest node until it lists every other node, then three more
// calls. Every node re-advertises after each growth step, so the provider
// records sit on the closest peers of the network as it is now, as if it
// had been that size for a republish interval.
func measureDirectScale(ctx context.Context, sizes []int, progress func(string, ...any)) ([]discoverSample, error) {
	var nodes []*scaleNode
	defer func() {
		for _, n := range nodes {
			n.close()
		}
	}()
	var out []discoverSample
	for _, size := range sizes {
		t0 := time.Now()
		fresh, err := growScale(ctx, &nodes, size)
		if err != nil {
			return nil, err
		}
		if err := forEach(nodes, func(n *scaleNode) error {
			<-n.d.DHT().RefreshRoutingTable()
			return nil
		}); err != nil {
			return nil, err
		}
		if err := forEach(nodes, func(n *scaleNode) error {
			var addrs []string // what the agent advertises in direct mode
			for _, m := range n.ph.h.Addrs() {
				addrs = append(addrs, m.String())
			}
			_, err := n.d.Advertise(ctx, []string{discoverService}, addrs)
			return err
		}); err != nil {
			return nil, fmt.Errorf("bench: advertise: %w", err)
		}
		progress("direct TCP, in process: %d hosts (%d new) up and advertised in %.1fs; discovering", size, fresh, time.Since(t0).Seconds())
		last := nodes[len(nodes)-1]
		d, err := discoverUntil(ctx, fmt.Sprintf("in-process host %d", size), size-1, 3, func(ctx context.Context) (int, error) {
			res, err := last.d.Discover(ctx, discoverService)
			return len(res.Ads), err
		})
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// growScale adds nodes until there are size, each new one bootstrapping
// from the first; it returns how many it added.
func growScale(ctx context.Context, nodes *[]*scaleNode, size int) (int, error) {
	before := len(*nodes)
	var fresh []*scaleNode
	for len(*nodes) < size {
		ph, err := newDirectHost(ctx, nil, nil)
		if err != nil {
			return 0, err
		}
		d, err := discovery.New(ph.h.Host(), ph.id, discovery.Options{})
		if err != nil {
			ph.close()
			return 0, fmt.Errorf("bench: %w", err)
		}
		n := &scaleNode{ph: ph, d: d}
		*nodes = append(*nodes, n)
		if len(*nodes) > 1 {
			fresh = append(fresh, n)
		}
	}
	boot := []peer.AddrInfo{(*nodes)[0].ph.addrInfo()}
	err := forEach(fresh, func(n *scaleNode) error { return n.d.Bootstrap(ctx, boot) })
	if err != nil {
		return 0, fmt.Errorf("bench: bootstrap: %w", err)
	}
	return len(*nodes) - before, nil
}

// forEach runs f on every node, scaleParallel at a time, and returns the
// first error.
func forEach(nodes []*scaleNode, f func(*scaleNode) error) error {
	var wg sync.WaitGroup
	sem := make(chan struct{}, scaleParallel)
	errs := make([]error, len(nodes))
	for i, n := range nodes {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = f(n)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
