package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/mmogit/mmogit/internal/localapi"
	ma "github.com/multiformats/go-multiaddr"
)

// peerRecord is one known peer as kept in <config>/peers.json.
type peerRecord struct {
	PeerID       string    `json:"peer_id"`
	OnionAddress string    `json:"onion_address,omitempty"`
	Addrs        []string  `json:"addrs"`
	Services     []string  `json:"services,omitempty"`
	LastSeen     time.Time `json:"last_seen,omitzero"`
	LastSync     time.Time `json:"last_sync,omitzero"`
	// LastCounts is what the last completed sync moved.
	LastCounts *localapi.SyncCounts `json:"last_sync_counts,omitempty"`
}

// peerBook persists known peers across restarts.
type peerBook struct {
	path string

	mu    sync.Mutex // mu guards the fields below
	peers map[peer.ID]*peerRecord
	dirty bool // changed since the last save
}

func loadPeerBook(dir string) (*peerBook, error) {
	pb := &peerBook{path: filepath.Join(dir, "peers.json"), peers: map[peer.ID]*peerRecord{}}
	b, err := os.ReadFile(pb.path)
	if errors.Is(err, fs.ErrNotExist) {
		return pb, nil
	}
	if err != nil {
		return nil, fmt.Errorf("agent: peers: %w", err)
	}
	var recs []*peerRecord
	if err := json.Unmarshal(b, &recs); err != nil {
		return nil, fmt.Errorf("agent: %s: %w", pb.path, err)
	}
	for _, r := range recs {
		id, err := peer.Decode(r.PeerID)
		if err != nil {
			continue // a hand-edited bad entry must not stop the agent
		}
		pb.peers[id] = r
	}
	return pb, nil
}

// add records addrs for id and returns the record.
func (pb *peerBook) add(ai peer.AddrInfo, onionAddr string) {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	r := pb.peers[ai.ID]
	if r == nil {
		r = &peerRecord{PeerID: ai.ID.String()}
		pb.peers[ai.ID] = r
	}
	if onionAddr != "" {
		r.OnionAddress = onionAddr
	}
	have := map[string]bool{}
	for _, a := range r.Addrs {
		have[a] = true
	}
	for _, a := range ai.Addrs {
		if s := a.String(); !have[s] {
			r.Addrs = append(r.Addrs, s)
			have[s] = true
		}
	}
	pb.saveLocked()
}

func (pb *peerBook) touch(id peer.ID) {
	pb.update(id, func(*peerRecord) {})
}

// update marks id seen now, lets f change its record and saves the book;
// an unknown id is left alone.
func (pb *peerBook) update(id peer.ID, f func(r *peerRecord)) {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	r := pb.peers[id]
	if r == nil {
		return
	}
	r.LastSeen = time.Now().UTC()
	f(r)
	pb.saveLocked()
}

// notifiee keeps the last-seen time of known peers current: a known peer
// is seen whenever a connection to it (either way) opens or closes. It
// runs on the goroutine that delivers every connection event, so it only
// updates memory; the next save (add, a sync, flush at stop) writes it.
func (pb *peerBook) notifiee() network.Notifiee {
	seen := func(_ network.Network, c network.Conn) {
		pb.mu.Lock()
		defer pb.mu.Unlock()
		if r := pb.peers[c.RemotePeer()]; r != nil {
			r.LastSeen = time.Now().UTC()
			pb.dirty = true
		}
	}
	return &network.NotifyBundle{ConnectedF: seen, DisconnectedF: seen}
}

// flush saves what the notifiee changed since the last save.
func (pb *peerBook) flush() {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	if pb.dirty {
		pb.saveLocked()
	}
}

func (pb *peerBook) setServices(id peer.ID, services []string) {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	if r := pb.peers[id]; r != nil {
		r.Services = services
	}
}

func (pb *peerBook) list() []peerRecord {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	out := make([]peerRecord, 0, len(pb.peers))
	for _, r := range pb.peers {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PeerID < out[j].PeerID })
	return out
}

func (pb *peerBook) addrInfo(id peer.ID) (peer.AddrInfo, bool) {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	r := pb.peers[id]
	if r == nil {
		return peer.AddrInfo{}, false
	}
	ai := peer.AddrInfo{ID: id}
	for _, s := range r.Addrs {
		if a, err := ma.NewMultiaddr(s); err == nil {
			ai.Addrs = append(ai.Addrs, a)
		}
	}
	return ai, true
}

// saveLocked writes peers.json atomically; errors are not fatal (the book
// is a cache of what we learned), so they are dropped.
func (pb *peerBook) saveLocked() {
	pb.dirty = false
	recs := make([]*peerRecord, 0, len(pb.peers))
	for _, r := range pb.peers {
		recs = append(recs, r)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].PeerID < recs[j].PeerID })
	b, err := json.MarshalIndent(recs, "", "  ")
	if err != nil {
		return
	}
	tmp := pb.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return
	}
	os.Rename(tmp, pb.path)
}
