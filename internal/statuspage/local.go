package statuspage

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/invite"
	"github.com/mmogit/mmogit/internal/memory"
	"github.com/mmogit/mmogit/internal/seal"
	"github.com/mmogit/mmogit/internal/trust"
)

// Memory is one stored message as the page shows it.
type Memory struct {
	ID          string `json:"id"`
	Author      string `json:"author"`
	AuthorLabel string `json:"author_label"`
	Timestamp   string `json:"timestamp"`
	// Type is the structured memory's type, or "post" for plain text.
	Type  string `json:"type"`
	Text  string `json:"text"`
	Valid bool   `json:"valid"`
	Error string `json:"error,omitempty"`
	// Encrypted: stored sealed; Readable: this identity can read it (a
	// plain message always is). Text of an unreadable one is a marker.
	Encrypted bool `json:"encrypted"`
	Readable  bool `json:"readable"`
}

// MemoryList is the newest memories matching a search.
type MemoryList struct {
	Items []Memory `json:"items"`
	// Total is how many match; Held how many the store holds in all.
	Total int    `json:"total"`
	Held  int    `json:"held"`
	Error string `json:"error,omitempty"`
}

// TrustEntry is a peer's roles after a trust action.
type TrustEntry struct {
	PeerID       string `json:"peer_id"`
	OnionAddress string `json:"onion_address"`
	Alias        string `json:"alias,omitempty"`
	Read         bool   `json:"read"`
	Write        bool   `json:"write"`
	Removed      bool   `json:"removed,omitempty"`
}

// Invite is a created invite line (see `mmogit invite`).
type Invite struct {
	Invite  string    `json:"invite"`
	Onion   string    `json:"onion_address"`
	Read    bool      `json:"read"`
	Write   bool      `json:"write"`
	Expires time.Time `json:"expires"`
	// Note warns when the onion service is restricted to authorized
	// clients, so the joiner also needs a client key.
	Note string `json:"note,omitempty"`
}

// Dir implements Local for a config directory, with the packages the CLI
// uses: the memory store (`show`), the trust list (`trust add/remove`)
// and invites (`invite`).
type Dir struct {
	Path string

	mu     sync.Mutex
	store  *memory.Store
	opened map[string]opened // by message ID (a hash of the signed bytes)
}

// opened is what open returned for one message: the page polls every
// 1.5 s, and decrypting every sealed message on each poll would cost
// an X25519 operation per message per poll.
type opened struct {
	text                string
	encrypted, readable bool
}

// maxOpened bounds the cache; past it, it starts over.
const maxOpened = 20000

// open is seal.Reveal with a cache by message ID, showing the marker in
// place of content this identity cannot read.
func (d *Dir) open(id, content string, priv ed25519.PrivateKey) (string, bool, bool) {
	d.mu.Lock()
	o, ok := d.opened[id]
	d.mu.Unlock()
	if ok && id != "" {
		return o.text, o.encrypted, o.readable
	}
	var marker string
	o.text, o.encrypted, o.readable, marker = seal.Reveal(content, priv)
	if !o.readable {
		o.text = marker // the page shows why, not the ciphertext
	}
	d.mu.Lock()
	if d.opened == nil || len(d.opened) >= maxOpened {
		d.opened = map[string]opened{}
	}
	d.opened[id] = o
	d.mu.Unlock()
	return o.text, o.encrypted, o.readable
}

func (d *Dir) identity() (*identity.Identity, error) {
	if _, err := os.Lstat(filepath.Join(d.Path, identity.SeedFile)); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return identity.Load(d.Path)
}

// openStore opens the repository once it exists, never creating it.
func (d *Dir) openStore() (*memory.Store, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.store != nil {
		return d.store, nil
	}
	dir := filepath.Join(d.Path, "messages")
	if _, err := os.Stat(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	st, err := memory.Open(dir)
	if err != nil {
		return nil, err
	}
	d.store = st
	return st, nil
}

// Memories implements Local: this identity's and trusted peers' messages
// (what `mmogit show` lists), newest first, those whose readable text,
// type or author label contains query (case-insensitive), at most limit.
func (d *Dir) Memories(ctx context.Context, query string, limit int) (MemoryList, error) {
	out := MemoryList{Items: []Memory{}}
	st, err := d.openStore()
	if err != nil || st == nil {
		return out, err
	}
	id, err := d.identity()
	if err != nil {
		return out, err
	}
	var priv ed25519.PrivateKey
	self := ""
	if id != nil {
		priv, self = id.Private, id.PubHex()
	}
	l, err := trust.Load(d.Path)
	if err != nil {
		return out, err
	}
	sc, _ := trust.NewScope(self, l, false, "")
	all, err := st.All(ctx)
	if err != nil {
		return out, err
	}
	query = strings.ToLower(strings.TrimSpace(query))
	for _, e := range slices.Backward(all) {
		if !sc.Allowed(e.Message.Author) {
			continue
		}
		out.Held++
		m := Memory{ID: e.ID, Author: e.Message.Author, AuthorLabel: sc.Label(e.Message.Author), Timestamp: e.Message.Timestamp, Valid: e.Valid, Type: "post"}
		if e.Err != nil {
			m.Error = e.Err.Error()
		}
		m.Text, m.Encrypted, m.Readable = d.open(e.ID, e.Message.Content, priv)
		if m.Readable {
			if sm, err := memory.ParseMemory(m.Text); err == nil {
				m.Type, m.Text = string(sm.Memory.Type), sm.Memory.Text()
			}
		}
		if query != "" && !strings.Contains(strings.ToLower(m.Text+" "+m.Type+" "+m.AuthorLabel), query) {
			continue
		}
		out.Total++
		if len(out.Items) < limit {
			out.Items = append(out.Items, m)
		}
	}
	return out, nil
}

// Trust implements Local: `mmogit trust add PEER` (both roles when
// neither is given).
func (d *Dir) Trust(ctx context.Context, peer string, read, write bool) (TrustEntry, error) {
	l, err := trust.Load(d.Path)
	if err != nil {
		return TrustEntry{}, err
	}
	pub, err := l.Resolve(peer)
	if err != nil {
		return TrustEntry{}, badRequest(err.Error())
	}
	if id, err := d.identity(); err == nil && id != nil && id.Public.Equal(pub) {
		return TrustEntry{}, badRequest(fmt.Sprintf("%s is this agent's own address", peer))
	}
	if !read && !write {
		read, write = true, true
	}
	e, err := trust.Set(d.Path, pub, read, write, "", "status page")
	if err != nil {
		return TrustEntry{}, err
	}
	return TrustEntry{PeerID: e.PeerID, OnionAddress: e.OnionAddress, Alias: e.Alias, Read: e.Read, Write: e.Write}, nil
}

// Untrust implements Local: `mmogit trust remove PEER`.
func (d *Dir) Untrust(ctx context.Context, peer string) (TrustEntry, error) {
	e, err := trust.Remove(d.Path, peer)
	if err != nil {
		return TrustEntry{}, badRequest(err.Error())
	}
	return TrustEntry{PeerID: e.PeerID, OnionAddress: e.OnionAddress, Alias: e.Alias, Removed: true}, nil
}

// Invite implements Local: `mmogit invite` (both roles when neither is
// given).
func (d *Dir) Invite(ctx context.Context, read, write bool, ttl time.Duration) (Invite, error) {
	inv, note, err := invite.Issue(d.Path, read, write, ttl, time.Now())
	if err != nil {
		return Invite{}, err
	}
	return Invite{Invite: inv.String(), Onion: inv.Onion, Read: inv.Read, Write: inv.Write, Expires: inv.Expires, Note: note}, nil
}
