package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sort"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/mmogit/mmogit/internal/config"
	"github.com/mmogit/mmogit/internal/discovery"
	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/localapi"
	"github.com/mmogit/mmogit/internal/onion"
	"github.com/mmogit/mmogit/internal/oniontransport"
	"github.com/mmogit/mmogit/internal/p2p"
	"github.com/mmogit/mmogit/internal/socks"
	"github.com/mmogit/mmogit/internal/syncproto"
	ma "github.com/multiformats/go-multiaddr"
)

var _ localapi.Backend = (*Agent)(nil)

// kindError gives an error a machine-readable kind for the API.
type kindError struct {
	kind string
	err  error
}

func (e *kindError) Error() string { return e.err.Error() }
func (e *kindError) Unwrap() error { return e.err }
func (e *kindError) Kind() string  { return e.kind }

// classify names the kind of a dial or sync error so the CLI and agents
// can branch on it (and know whether retrying soon makes sense).
func classify(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, p2p.ErrPolicy):
		// The transport policy forbids every address of the peer.
		return "policy"
	case errors.Is(err, socks.ErrDaemonNotRunning):
		return "tor_not_running"
	case errors.Is(err, socks.ErrOnionServiceUnreachable):
		return "onion_unreachable"
	case errors.Is(err, socks.ErrOnionAuth):
		return "onion_auth"
	case errors.Is(err, socks.ErrBadAddress):
		return "bad_address"
	case errors.Is(err, socks.ErrCircuitBuildFailed):
		return "circuit_failed"
	case errors.Is(err, socks.ErrSocksProxy):
		return "socks_error"
	case errors.Is(err, syncproto.ErrTimeout):
		// The peer sent nothing (or read nothing) for the idle timeout.
		return "peer_stalled"
	case errors.Is(err, syncproto.ErrFrameTooLarge):
		return "frame_too_large"
	case errors.Is(err, syncproto.ErrProtocol):
		// The peer broke the sync protocol: a bug or a hostile peer;
		// retrying will not help.
		return "protocol_error"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		// Storing what the peer sent failed; retrying helps only once
		// space is freed.
		return "disk_full"
	case errors.Is(err, network.ErrReset), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		// The connection died mid-session (say, either end's tor was
		// restarted); what was stored stays, and a new sync resumes.
		return "connection_lost"
	}
	return "error"
}

func wrapKind(err error) error {
	if err == nil {
		return nil
	}
	return &kindError{kind: classify(err), err: err}
}

// Status implements localapi.Backend.
func (a *Agent) Status(ctx context.Context) localapi.Status {
	st := localapi.Status{
		PID: os.Getpid(), PeerID: a.id.PeerID().String(), Pubkey: a.id.PubHex(),
		OnionAddress: a.id.OnionAddress(), Transport: string(a.mode()),
		StartedAt: a.start, PeersKnown: len(a.peers.list()),
		Goroutines: runtime.NumGoroutine(), RSSBytes: selfRSS(),
	}
	// What is advertised is the discovery loop's set (normalized, and
	// what `tor advertise` last gave); before start, the configured one.
	st.Services = append([]string{}, a.startupServices(false)...)
	if a.started() {
		kept, _, _ := a.disc.Advertised()
		st.Services = append([]string{}, kept...)
	}
	a.mu.Lock()
	st.Error = a.lastErr
	a.mu.Unlock()
	if a.tor != nil {
		ts := a.tor.status()
		st.BootstrapProgress = ts.boot.Progress
		st.BootstrapSummary = ts.boot.Summary
		st.BootstrapWarning = ts.boot.Warning
		st.Published, st.PublishedAt = ts.published, ts.publishedAt
		st.PoW, st.TorVersion, st.TorRestarts = ts.pow, ts.version, ts.restarts
	}
	if a.started() {
		for _, m := range a.host.Addrs() {
			st.Listen = append(st.Listen, m.String())
		}
		st.PeersConnected = len(a.host.Host().Network().Peers())
		// Whenever tor runs (tor, hybrid, or a peer override to either
		// under direct), some peers can reach the agent only over its
		// onion service, so it is ready once that is published.
		st.Ready = a.tor == nil || st.Published
	}
	return st
}

// selfRSS is this process's resident set in bytes from /proc/self/statm
// (second field, in pages); 0 where there is no /proc.
func selfRSS() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, resident int64
	if _, err := fmt.Sscan(string(b), &size, &resident); err != nil {
		return 0
	}
	return resident * int64(os.Getpagesize())
}

// Connect implements localapi.Backend.
func (a *Agent) Connect(ctx context.Context, req localapi.ConnectRequest) (localapi.ConnectResult, error) {
	if !a.started() {
		return localapi.ConnectResult{}, errStarting
	}
	ai, onionHost, err := parseTarget(req.Target)
	if err != nil {
		return localapi.ConnectResult{}, &kindError{kind: "bad_address", err: err}
	}
	start := time.Now()
	if err := a.connect(ctx, ai, onionHost); err != nil {
		return localapi.ConnectResult{}, wrapKind(err)
	}
	connectDur := time.Since(start)
	rtt, err := a.host.Ping(ctx, ai.ID)
	if err != nil {
		return localapi.ConnectResult{}, wrapKind(fmt.Errorf("agent: ping %s: %w", ai.ID, err))
	}
	res := localapi.ConnectResult{PeerID: ai.ID.String(), RTTMillis: ms(rtt), ConnectMs: ms(connectDur)}
	if conns := a.host.Host().Network().ConnsToPeer(ai.ID); len(conns) > 0 {
		res.Addr = conns[0].RemoteMultiaddr().String()
		res.Transport = a.connTransport(conns[0])
	}
	return res, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// connect dials a peer (addresses from ai or the peer book) and records it.
func (a *Agent) connect(ctx context.Context, ai peer.AddrInfo, onionHost string) error {
	if ai.ID == a.id.PeerID() {
		return errors.New("agent: that is this agent's own address")
	}
	if len(ai.Addrs) == 0 {
		known, ok := a.peers.addrInfo(ai.ID)
		if !ok || len(known.Addrs) == 0 {
			ai.Addrs = a.host.Host().Peerstore().Addrs(ai.ID)
		} else {
			ai.Addrs = known.Addrs
		}
		if len(ai.Addrs) == 0 {
			return fmt.Errorf("agent: no known address for %s; give its onion address or multiaddr", ai.ID)
		}
	}
	// A dial the user (or a sync) asks for now must not be refused
	// because an automatic redial failed while tor was restarting.
	if sw, ok := a.host.Host().Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(ai.ID)
	}
	// Host.Connect dials only what the transport policy allows, logs what
	// it refuses, and fails with the policy error (mode and address named)
	// when it refuses every address, instead of "connected" over another
	// path.
	if err := a.host.Connect(ctx, ai); err != nil {
		return err
	}
	a.peers.add(peer.AddrInfo{ID: ai.ID, Addrs: a.dialable(ai.ID, ai.Addrs)}, onionHost)
	a.peers.touch(ai.ID)
	return nil
}

// rememberPeer stores the announced addresses of a connected peer.
func (a *Agent) rememberPeer(id peer.ID) {
	addrs := a.dialable(id, a.host.Host().Peerstore().Addrs(id))
	onionHost := ""
	if pub, err := identity.PublicFromPeerID(id); err == nil {
		onionHost = onion.Hostname(pub)
	}
	a.peers.add(peer.AddrInfo{ID: id, Addrs: addrs}, onionHost)
}

// dialable keeps the addresses the transport policy lets this agent dial
// to id: only those are stored, so a tor-only agent keeps no IP or DNS
// address in peers.json.
func (a *Agent) dialable(id peer.ID, addrs []ma.Multiaddr) []ma.Multiaddr {
	allowed, _, _, err := a.host.Dialable(id, addrs)
	if err != nil {
		return nil
	}
	return allowed
}

func (a *Agent) peerMode(id peer.ID) config.Transport {
	for k, t := range a.opts.Config.PeerTransport {
		if pid, err := resolvePeerKey(k); err == nil && pid == id {
			return t
		}
	}
	return a.mode()
}

// Advertise implements localapi.Backend.
func (a *Agent) Advertise(ctx context.Context, req localapi.AdvertiseRequest) (localapi.Advertisement, error) {
	if err := a.advertiseRefusal(); err != nil {
		return localapi.Advertisement{}, err
	}
	if !a.started() {
		return localapi.Advertisement{}, errStarting
	}
	services, err := discovery.NormalizeServices(req.Services)
	if err != nil {
		return localapi.Advertisement{}, &kindError{kind: "bad_request", err: err}
	}
	ad, err := a.disc.Advertise(ctx, services, a.directAddrs())
	// The set is kept (and retried by keepAdvertising) even when this
	// first publish failed, e.g. before the DHT has peers; Status shows it.
	if err != nil {
		return localapi.Advertisement{}, wrapKind(fmt.Errorf("%w (kept; the agent retries)", err))
	}
	return apiAd(ad, time.Now()), nil
}

// directAddrs are the TCP addresses an advertisement may carry: none in
// tor-only mode, so no advertisement ever reveals an IP address.
func (a *Agent) directAddrs() []string {
	if a.mode() == config.Tor {
		return nil
	}
	var out []string
	for _, m := range a.host.Addrs() {
		if !oniontransport.IsOnion(m) {
			out = append(out, m.String())
		}
	}
	return out
}

func apiAd(ad discovery.Advertisement, now time.Time) localapi.Advertisement {
	pid, _ := identity.PeerIDFromPublic(ad.PubKey)
	return localapi.Advertisement{
		Pubkey: fmt.Sprintf("%x", []byte(ad.PubKey)), OnionAddress: ad.OnionAddress, PeerID: pid.String(),
		Services: ad.Services, Addrs: ad.Addrs, Seq: ad.Seq, Timestamp: ad.Timestamp, Expires: ad.Expires,
		AgeSeconds: now.Sub(ad.Timestamp).Seconds(),
	}
}

// Discover implements localapi.Backend.
func (a *Agent) Discover(ctx context.Context, service string) (localapi.DiscoverResult, error) {
	if !a.started() {
		return localapi.DiscoverResult{}, errStarting
	}
	start := time.Now()
	res, err := a.disc.Discover(ctx, service)
	if err != nil {
		return localapi.DiscoverResult{}, wrapKind(err)
	}
	out := localapi.DiscoverResult{Service: service, Dropped: res.Dropped, Ads: []localapi.Advertisement{}}
	for _, e := range res.DropErrors {
		out.DropErrors = append(out.DropErrors, e.Error())
	}
	now := time.Now()
	for _, ad := range res.Ads {
		api := apiAd(ad, now)
		out.Ads = append(out.Ads, api)
		// Remember what we found (`mmogit peers`, `sync <peer ID>`); a bare
		// sync does not dial it: that takes the trust list.
		if ai, oh, err := parseTarget(ad.OnionAddress); err == nil {
			if a.mode() != config.Tor {
				for _, s := range ad.Addrs {
					if m, err := ma.NewMultiaddr(s); err == nil {
						ai.Addrs = append(ai.Addrs, m)
					}
				}
			}
			a.peers.add(ai, oh)
			a.peers.setServices(ai.ID, ad.Services)
		}
	}
	out.DurationMs = ms(time.Since(start))
	return out, nil
}

// maxKnownBootstrap bounds how many saved peers bootstrap the DHT.
const maxKnownBootstrap = 16

// bootstrapPeers are the DHT bootstrap peers: the configured and flagged
// ones, then the peers this agent knows from before (peers.json: peers it
// synced with, connected to or discovered), most recently seen first. So
// an agent restarted without --bootstrap rejoins the network through the
// peers it knew.
func (a *Agent) bootstrapPeers() ([]peer.AddrInfo, error) {
	var out []peer.AddrInfo
	seen := map[peer.ID]bool{a.id.PeerID(): true}
	for _, s := range append(append([]string{}, a.opts.Config.Bootstrap...), a.opts.Bootstrap...) {
		ai, oh, err := parseTarget(s)
		if err != nil {
			return nil, fmt.Errorf("agent: bootstrap peer: %w", err)
		}
		if seen[ai.ID] {
			continue
		}
		seen[ai.ID] = true
		a.peers.add(ai, oh)
		out = append(out, ai)
	}
	known := a.peers.list()
	sort.SliceStable(known, func(i, j int) bool { return known[i].LastSeen.After(known[j].LastSeen) })
	n := 0
	for _, r := range known {
		id, err := peer.Decode(r.PeerID)
		if err != nil || seen[id] {
			continue
		}
		ai, _ := a.peers.addrInfo(id)
		if a.peerMode(id) != config.Direct {
			// Onion addresses only: the DHT may dial a bootstrap peer's
			// addresses on its own, outside hybrid's onion-first order
			// (and its warning that the peer then sees our IP). A direct
			// address is dialed when this agent itself connects.
			ai.Addrs = slices.DeleteFunc(ai.Addrs, func(m ma.Multiaddr) bool { return !oniontransport.IsOnion(m) })
		}
		if len(ai.Addrs) == 0 {
			continue
		}
		seen[id] = true
		out = append(out, ai)
		if n++; n == maxKnownBootstrap {
			break
		}
	}
	return out, nil
}

// bootstrapLoop connects to the bootstrap peers (configured and known,
// see bootstrapPeers) until the DHT has someone to talk to, retrying with
// backoff.
func (a *Agent) bootstrapLoop(ctx context.Context, bootstrap []peer.AddrInfo) {
	backoff := 2 * time.Second
	for ctx.Err() == nil {
		err := a.disc.Bootstrap(ctx, bootstrap)
		if err == nil && len(a.host.Host().Network().Peers()) > 0 {
			return
		}
		if len(bootstrap) == 0 {
			return
		}
		a.log.Info("dht bootstrap incomplete, retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Minute)
	}
}

// keepAdvertising is the agent's one republish loop (discovery.Run), run
// for as long as the agent runs whatever its configuration: it keeps the
// set advertised last (the configured services, or what `tor advertise`
// gave since) published, re-reading it on every pass, and retries soon,
// with backoff, after a failure. With no services configured it publishes
// nothing until `tor advertise`.
func (a *Agent) keepAdvertising(ctx context.Context) {
	if err := a.disc.Run(ctx); err != nil && ctx.Err() == nil {
		a.log.Warn("advertisement republishing stopped", "err", err)
	}
}

// dropOnionConns closes connections that went through a tor that died.
func (a *Agent) dropOnionConns() {
	if !a.started() {
		return
	}
	for _, c := range a.host.Host().Network().Conns() {
		if oniontransport.IsOnion(c.RemoteMultiaddr()) || a.mode() == config.Tor {
			c.Close()
		}
	}
}
