package agent

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/localapi"
	"github.com/mmogit/mmogit/internal/onion"
	"github.com/mmogit/mmogit/internal/p2p"
	"github.com/mmogit/mmogit/internal/seal"
	"github.com/mmogit/mmogit/internal/socks"
	"github.com/mmogit/mmogit/internal/syncproto"
	"github.com/mmogit/mmogit/internal/trust"
)

// access returns the store as remote may see and change it in one sync
// session, and its trust entry (the zero Entry for a stranger). remote is
// authenticated by libp2p's handshake before any sync byte moves, so the
// view is chosen before the summary is built.
func (a *Agent) access(remote peer.ID) (*trust.View, trust.Entry, error) {
	pub, err := identity.PublicFromPeerID(remote)
	if err != nil {
		return nil, trust.Entry{}, fmt.Errorf("agent: peer %s has no Ed25519 key: %w", remote, err)
	}
	list, err := a.trust.Current()
	if err != nil {
		// The last good list is still applied; a bad edit never widens access.
		a.log.Warn("trust list unreadable; using the last good one", "err", err)
	}
	e, _ := list.Lookup(pub)
	idx := a.recipientIndex()
	v := &trust.View{
		Store: a.store, Self: a.id.PubHex(), Peer: hex.EncodeToString(pub), Entry: e,
		Recipients: idx.Recipients,
		Quota:      a.quota,
	}
	return v, e, nil
}

// recipientIndex reads the recipients of our own sealed messages (see
// seal.Index). It is small and read once per session so posts made by the
// CLI apply at once.
func (a *Agent) recipientIndex() seal.Index {
	idx, err := seal.LoadIndex(a.opts.ConfigDir)
	if err != nil {
		a.log.Warn("recipient index unreadable; recipients without a role receive nothing", "err", err)
		return nil
	}
	return idx
}

// syncOptions are the sync protocol settings the agent uses.
// The peer is already authenticated by libp2p's Noise handshake; the sync
// hello must name the same key, so a peer cannot relay another's identity.
func (a *Agent) syncOptions(remote peer.ID, v *trust.View) syncproto.Options {
	idle := a.syncIdle
	if idle <= 0 {
		idle = a.timeouts().SyncIdle.D()
	}
	o := syncproto.Options{Identity: a.id.Private, RequireAuth: true, IdleTimeout: idle, Logger: a.log}
	if pub, err := identity.PublicFromPeerID(remote); err == nil {
		// Noise proved this key: the session may act on the peer's
		// summary before the sync Auth (which it still checks) arrives.
		o.ExpectPeer, o.TransportAuthenticated = pub, true
	}
	o.RefuseInbound = v == nil || !v.CanWrite()
	return o
}

// handleSync serves a sync stream a peer opened.
func (a *Agent) handleSync(s network.Stream) {
	defer s.Close()
	remote := s.Conn().RemotePeer()
	v, entry, err := a.access(remote)
	if err != nil {
		a.log.Warn("inbound sync refused", "peer", remote, "err", err)
		s.Reset()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.timeouts().Sync.D())
	defer cancel()
	opts := a.syncOptions(remote, v)
	opts.Accepted = true
	st, err := syncproto.Sync(ctx, s, v, opts)
	if err != nil {
		a.log.Warn("inbound sync failed", "peer", remote, "err", err)
		s.Reset()
		return
	}
	// Strangers do not accumulate: only a peer with a role is kept in
	// peers.json (a later bare sync dials the trust list, not this book).
	if entry.Read || entry.Write {
		a.rememberPeer(remote)
		a.peers.synced(remote, st)
	}
	if st.Rejected > 0 {
		// Forged, tampered or malformed messages: none was stored.
		a.log.Warn("inbound sync rejected messages", "peer", remote, "rejected", st.Rejected, "first", errors.Join(st.RejectErrors...))
	}
	if st.Refused > 0 {
		a.log.Info("inbound sync refused messages", "peer", remote, "refused", st.Refused, "write", entry.Write)
	}
	a.log.Info("inbound sync", "peer", remote, "received", st.Added, "sent", st.MessagesSent, "rejected", st.Rejected, "refused", st.Refused)
}

// syncTargets are the peers a bare sync dials: every peer in the trust
// list with a role, and every recipient of our own sealed messages. Peers
// that discovery found, or that connected to us, are synced only when
// named.
func (a *Agent) syncTargets() []peer.AddrInfo {
	keys := map[string]bool{}
	list, err := a.trust.Current()
	if err != nil {
		a.log.Warn("trust list unreadable; using the last good one", "err", err)
	}
	for _, e := range list.Entries() {
		if e.Read || e.Write {
			keys[e.Key] = true
		}
	}
	for _, rs := range a.recipientIndex() {
		for _, k := range rs {
			keys[k] = true
		}
	}
	delete(keys, a.id.PubHex())
	var out []peer.AddrInfo
	for k := range keys {
		b, err := hex.DecodeString(k)
		if err != nil || len(b) != ed25519.PublicKeySize {
			continue
		}
		id, err := identity.PeerIDFromPublic(b)
		if err != nil {
			continue
		}
		ai, ok := a.peers.addrInfo(id)
		if !ok || len(ai.Addrs) == 0 {
			// A key is enough: its onion address follows from it.
			t, _, err := parseTarget(onion.Hostname(b))
			if err != nil {
				continue
			}
			ai = t
		}
		out = append(out, ai)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Sync implements localapi.Backend.
func (a *Agent) Sync(ctx context.Context, req localapi.SyncRequest, progress func(localapi.SyncProgress)) ([]localapi.SyncResult, error) {
	if !a.started() {
		return nil, errStarting
	}
	var targets []peer.AddrInfo
	onionHosts := map[peer.ID]string{}
	if req.Peer != "" {
		ai, oh, err := parseTarget(req.Peer)
		if err != nil {
			return nil, &kindError{kind: "bad_address", err: err}
		}
		targets = append(targets, ai)
		onionHosts[ai.ID] = oh
	} else {
		targets = a.syncTargets()
	}
	results := make([]localapi.SyncResult, len(targets))
	// Bounded: each sync is an onion dial, a rendezvous and a session.
	sem := make(chan struct{}, max(1, a.opts.Config.Sync.Concurrency))
	var wg sync.WaitGroup
	for i, ai := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				results[i] = localapi.SyncResult{PeerID: ai.ID.String(), Error: ctx.Err().Error(), ErrorKind: classify(ctx.Err())}
				return
			}
			defer func() { <-sem }()
			results[i] = a.syncOne(ctx, ai, onionHosts[ai.ID], progress)
		}()
	}
	wg.Wait()
	sort.Slice(results, func(i, j int) bool { return results[i].PeerID < results[j].PeerID })
	return results, nil
}

// syncOne connects to one peer (retrying transient onion failures with
// backoff) and runs the sync protocol on a new stream.
func (a *Agent) syncOne(ctx context.Context, ai peer.AddrInfo, onionHost string, progress func(localapi.SyncProgress)) localapi.SyncResult {
	res := localapi.SyncResult{PeerID: ai.ID.String()}
	start := time.Now()
	fail := func(err error) localapi.SyncResult {
		res.Error, res.ErrorKind = err.Error(), classify(err)
		res.RetryAfterMs = socks.RetryAfter(err).Milliseconds()
		res.DurationMs = ms(time.Since(start))
		a.log.Warn("sync failed", "peer", ai.ID, "err", err)
		return res
	}
	// The sync stream needs no identify: the connection returns once
	// Noise and yamux are up, and the stream's first bytes carry the
	// protocol proposal and the Hello together.
	cctx, ccancel := context.WithTimeout(p2p.WithoutIdentifyWait(ctx), a.timeouts().Connect.D())
	err := a.connectRetry(cctx, ai, onionHost)
	ccancel()
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeouts().Sync.D())
	defer cancel()
	v, _, err := a.access(ai.ID)
	if err != nil {
		return fail(err)
	}
	opts := a.syncOptions(ai.ID, v)
	if progress != nil {
		opts.Progress = func(received, wanted int) {
			progress(localapi.SyncProgress{PeerID: ai.ID.String(), Received: received, Wanted: wanted})
		}
	}
	s, err := a.host.OpenStream(ctx, peer.AddrInfo{ID: ai.ID}, SyncProtocol3)
	if err != nil {
		return fail(fmt.Errorf("agent: open sync stream to %s: %w", ai.ID, err))
	}
	defer s.Close()
	st, err := syncproto.Sync(ctx, s, v, opts)
	if errors.Is(err, p2p.ErrProtocolNotSupported) {
		// An agent from before version 3: negotiate the old protocol ID.
		s.Reset()
		s, err = a.host.Host().NewStream(network.WithAllowLimitedConn(ctx, "sync"), ai.ID, SyncProtocol)
		if err != nil {
			return fail(fmt.Errorf("agent: open sync stream to %s: %w", ai.ID, err))
		}
		defer s.Close()
		st, err = syncproto.Sync(ctx, s, v, opts)
	}
	// A failed sync reports what moved before it failed: what was
	// received is stored (each batch on its own), and the next sync
	// resumes from there.
	res.Sent, res.Received, res.Rejected, res.Refused = st.MessagesSent, st.Added, st.Rejected, st.Refused
	res.BytesSent, res.BytesRecv = st.BytesSent, st.BytesReceived
	if err != nil {
		s.Reset()
		return fail(err)
	}
	a.peers.synced(ai.ID, st)
	res.DurationMs = ms(time.Since(start))
	return res
}

// connectRetry retries what socks says is worth retrying (an onion
// descriptor that was just uploaded, a failed introduction) a few times.
func (a *Agent) connectRetry(ctx context.Context, ai peer.AddrInfo, onionHost string) error {
	if a.host.Host().Network().Connectedness(ai.ID) == network.Connected {
		return nil
	}
	const attempts = 4
	var err error
	for attempt := range attempts {
		if err = a.connect(ctx, ai, onionHost); err == nil {
			return nil
		}
		wait := socks.RetryAfter(err)
		if wait <= 0 || attempt == attempts-1 {
			return err
		}
		wait = wait << attempt
		if a.retryWait != nil {
			wait = a.retryWait(wait)
		}
		a.log.Info("peer unreachable, retrying", "peer", ai.ID, "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(wait):
		}
	}
	return err
}
