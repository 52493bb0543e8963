package trust

import (
	"context"
	"encoding/hex"
	"slices"
	"sync"
	"time"

	"github.com/mmogit/mmogit/internal/memory"
	"github.com/mmogit/mmogit/internal/seal"
)

// Store is what a View reads and writes: *memory.Store.
type Store interface {
	All(ctx context.Context) ([]memory.Entry, error)
	Inventory(ctx context.Context) (map[string][]string, error)
	Get(ctx context.Context, ids []string) ([]memory.Message, error)
	Add(ctx context.Context, msgs []memory.Message) (memory.AddResult, error)
}

// View is the store as one peer may see and change it during one sync
// session. It satisfies syncproto.Syncer.
//
// What the peer receives (Inventory, and Get, which serves only what
// Inventory listed):
//   - with the read role: everything valid that is held;
//   - otherwise: messages by Self whose content is not sealed, and Self's
//     sealed messages whose recipients (Recipients) include the peer.
//
// Nothing else is visible, not even as a count: the summary the sync sends
// is built from Inventory.
//
// What the peer may store (Add): nothing without the write role (every
// message is refused); with it, verified messages up to the peer's quota.
type View struct {
	Store Store
	Self  string // our key, 64 hex
	Peer  string // the peer's key, 64 hex (authenticated by the transport)
	Entry Entry  // the peer's roles; the zero Entry is a stranger
	// Recipients returns the extra recipients of one of our sealed
	// messages (64-hex keys), from the local index.
	Recipients func(id string) []string
	Quota      *Quota

	once    sync.Once
	visible map[string]bool
	inv     map[string][]string
	err     error
}

// CanWrite reports whether the peer may store anything.
func (v *View) CanWrite() bool { return v.Entry.Write }

func (v *View) build(ctx context.Context) {
	if v.Entry.Read {
		v.inv, v.err = v.Store.Inventory(ctx)
		return
	}
	es, err := v.Store.All(ctx)
	if err != nil {
		v.err = err
		return
	}
	v.visible, v.inv = map[string]bool{}, map[string][]string{}
	for _, e := range es {
		if !e.Valid || e.Message.Author != v.Self || v.visible[e.ID] {
			continue
		}
		// Only the mark matters here: the policy never decrypts.
		if seal.IsSealed(e.Message.Content) && !v.addressed(e.ID) {
			continue
		}
		v.visible[e.ID] = true
		v.inv[v.Self] = append(v.inv[v.Self], e.ID)
	}
	slices.Sort(v.inv[v.Self])
	if len(v.inv[v.Self]) == 0 {
		delete(v.inv, v.Self)
	}
}

func (v *View) addressed(id string) bool {
	if v.Recipients == nil {
		return false
	}
	return slices.Contains(v.Recipients(id), v.Peer)
}

// Inventory implements syncproto.Syncer: only what the peer may receive.
func (v *View) Inventory(ctx context.Context) (map[string][]string, error) {
	v.once.Do(func() { v.build(ctx) })
	if v.err != nil {
		return nil, v.err
	}
	out := make(map[string][]string, len(v.inv))
	for a, ids := range v.inv {
		out[a] = slices.Clone(ids)
	}
	return out, nil
}

// Held implements syncproto.Holder: for a peer with the read role, every
// valid ID held, shown or not, so the session does not fetch what is
// already here. For any other peer it is nil: if the session skipped IDs it
// holds but does not show, a peer could learn which messages we hold by
// offering them and watching which we request. Add then drops what is held
// before charging the quota.
func (v *View) Held(ctx context.Context) (map[string]bool, error) {
	if !v.Entry.Read {
		return nil, nil
	}
	return v.heldSet(ctx)
}

func (v *View) heldSet(ctx context.Context) (map[string]bool, error) {
	inv, err := v.Store.Inventory(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, ids := range inv {
		for _, id := range ids {
			out[id] = true
		}
	}
	return out, nil
}

// Get implements syncproto.Syncer: a request for an ID the peer was not
// shown gets nothing, exactly as an ID that is not held.
func (v *View) Get(ctx context.Context, ids []string) ([]memory.Message, error) {
	v.once.Do(func() { v.build(ctx) })
	if v.err != nil {
		return nil, v.err
	}
	if v.Entry.Read {
		return v.Store.Get(ctx, ids)
	}
	allowed := make([]string, 0, len(ids))
	for _, id := range ids {
		if v.visible[id] {
			allowed = append(allowed, id)
		}
	}
	return v.Store.Get(ctx, allowed)
}

// Add implements syncproto.Syncer: a peer without the write role stores
// nothing, and one with it stores up to its quota.
func (v *View) Add(ctx context.Context, msgs []memory.Message) (memory.AddResult, error) {
	if !v.Entry.Write {
		return memory.AddResult{Refused: len(msgs)}, nil
	}
	if v.Quota == nil {
		return v.Store.Add(ctx, msgs)
	}
	// What is held already costs no quota: it will not be stored again.
	held, err := v.heldSet(ctx)
	if err != nil {
		return memory.AddResult{}, err
	}
	var fresh []memory.Message
	dup := 0
	for _, m := range msgs {
		if held[m.ID()] {
			dup++
		} else {
			fresh = append(fresh, m)
		}
	}
	ok, refused := v.Quota.take(v.Peer, fresh, time.Now())
	res, err := v.Store.Add(ctx, ok)
	res.Duplicate += dup
	res.Refused += refused
	return res, err
}

// Quota limits what each writing peer may store per day (a rolling
// window that restarts 24 hours after its first message). It is kept in
// memory: a restart gives every peer a fresh day.
type Quota struct {
	Messages int   // per peer per day; <= 0: unlimited
	Bytes    int64 // content bytes per peer per day; <= 0: unlimited

	mu   sync.Mutex
	used map[string]*usage
}

type usage struct {
	start    time.Time
	messages int
	bytes    int64
}

// NewQuota returns a quota of messages and bytes per peer per day.
func NewQuota(messages int, bytes int64) *Quota {
	return &Quota{Messages: messages, Bytes: bytes, used: map[string]*usage{}}
}

// take splits msgs into what peer may still store and the number refused,
// and charges what it lets through. Duplicates and forgeries are charged
// too: they cost verification all the same.
func (q *Quota) take(peer string, msgs []memory.Message, now time.Time) ([]memory.Message, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.used == nil {
		q.used = map[string]*usage{}
	}
	u := q.used[peer]
	if u == nil || now.Sub(u.start) >= 24*time.Hour {
		u = &usage{start: now}
		q.used[peer] = u
	}
	for i, m := range msgs {
		n := int64(len(m.Content))
		if (q.Messages > 0 && u.messages+1 > q.Messages) || (q.Bytes > 0 && u.bytes+n > q.Bytes) {
			return msgs[:i], len(msgs) - i
		}
		u.messages++
		u.bytes += n
	}
	return msgs, 0
}

// Used returns what peer (64 hex) stored in its current window.
func (q *Quota) Used(peer string) (messages int, bytes int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if u := q.used[peer]; u != nil {
		return u.messages, u.bytes
	}
	return 0, 0
}

// HexKey is the lowercase hex form of a key, as View expects.
func HexKey(pub []byte) string { return hex.EncodeToString(pub) }
