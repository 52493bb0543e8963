// Package trust holds the agent's trust list: which other agents may read
// its memories and which may write into its store, and the access policy
// that the memory sync applies to every peer.
//
// The list lives in <config>/trust.json (mode 0600), one entry per peer
// key. A peer has two independent roles:
//
//   - read: a sync sends it everything this agent holds (ciphertext
//     included; it can decrypt only what is addressed to it);
//   - write: messages it sends are verified and stored, up to a daily
//     quota per peer.
//
// A peer without a role (a stranger) receives only the messages this agent
// itself authored in the clear (posted with --public), plus its own sealed
// messages that name the peer as a recipient; it can store nothing here.
// See [View] for how one sync session applies this.
//
// The file is rewritten whole (temporary file + rename) on every change, so
// a reader sees the old or the new list, never half of one. The running
// agent re-reads it when it changes on disk ([Book]), so `mmogit trust add`
// takes effect without a restart.
package trust

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/onion"
	"github.com/mmogit/mmogit/internal/platform"
)

// File is the trust list's file name in the config dir.
const File = "trust.json"

// ErrUnknown is returned by Remove and Resolve for a name that is in
// neither the list nor a valid key.
var ErrUnknown = errors.New("trust: no such peer in the trust list")

// Entry is one trusted peer.
type Entry struct {
	Key          string    `json:"key"` // 64 lowercase hex Ed25519 public key
	PeerID       string    `json:"peer_id"`
	OnionAddress string    `json:"onion_address"`
	Alias        string    `json:"alias,omitempty"`
	Read         bool      `json:"read"`
	Write        bool      `json:"write"`
	Added        time.Time `json:"added,omitzero"`
	// Via says how the entry came to be ("trust add", "invite", "join").
	Via string `json:"via,omitempty"`
}

// Public returns the entry's key.
func (e Entry) Public() ed25519.PublicKey {
	b, _ := hex.DecodeString(e.Key)
	return ed25519.PublicKey(b)
}

// Label is how the entry is shown: its alias, or its whole key.
func (e Entry) Label() string {
	if e.Alias != "" {
		return e.Alias
	}
	return e.Key
}

// NewEntry fills in the three names of pub.
func NewEntry(pub ed25519.PublicKey, read, write bool) (Entry, error) {
	pid, err := identity.PeerIDFromPublic(pub)
	if err != nil {
		return Entry{}, fmt.Errorf("trust: %w", err)
	}
	return Entry{
		Key: hex.EncodeToString(pub), PeerID: pid.String(), OnionAddress: onion.Hostname(pub),
		Read: read, Write: write, Added: time.Now().UTC().Truncate(time.Second),
	}, nil
}

// List is a snapshot of the trust list, keyed by hex key.
type List struct {
	entries map[string]Entry
}

// Lookup returns the entry for pub, if any.
func (l *List) Lookup(pub ed25519.PublicKey) (Entry, bool) {
	if l == nil {
		return Entry{}, false
	}
	e, ok := l.entries[hex.EncodeToString(pub)]
	return e, ok
}

// LookupHex returns the entry for a 64-hex key, if any.
func (l *List) LookupHex(key string) (Entry, bool) {
	if l == nil {
		return Entry{}, false
	}
	e, ok := l.entries[key]
	return e, ok
}

// Entries returns the entries sorted by alias, then key.
func (l *List) Entries() []Entry {
	if l == nil {
		return nil
	}
	out := make([]Entry, 0, len(l.entries))
	for _, e := range l.entries {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Alias != out[j].Alias {
			return out[i].Alias < out[j].Alias
		}
		return out[i].Key < out[j].Key
	})
	return out
}

// Resolve maps a name to a key: an alias in the list, a 64-hex key, an
// onion address or a peer ID. A short hex prefix is never accepted.
func (l *List) Resolve(name string) (ed25519.PublicKey, error) {
	name = strings.TrimSpace(name)
	if l != nil && name != "" {
		for _, e := range l.entries {
			if e.Alias == name {
				return e.Public(), nil
			}
		}
	}
	pub, err := identity.ParsePeerKey(name)
	if err != nil {
		return nil, fmt.Errorf("%w (and no trusted alias %q)", err, name)
	}
	return pub, nil
}

// Load reads <dir>/trust.json; a missing file is an empty list.
func Load(dir string) (*List, error) {
	l, _, err := load(filepath.Join(dir, File))
	return l, err
}

func load(path string) (*List, os.FileInfo, error) {
	l := &List{entries: map[string]Entry{}}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return l, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("trust: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("trust: %w", err)
	}
	if platform.OthersAccess(fi) != 0 {
		return nil, nil, fmt.Errorf("trust: %s has mode %04o: others may read or change whom this agent trusts; run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	var es []Entry
	if err := json.NewDecoder(f).Decode(&es); err != nil {
		return nil, nil, fmt.Errorf("trust: %s: %w", path, err)
	}
	for i, e := range es {
		pub, err := hex.DecodeString(e.Key)
		if err != nil || len(pub) != ed25519.PublicKeySize || hex.EncodeToString(pub) != e.Key {
			return nil, nil, fmt.Errorf("trust: %s: entry %d: key %q is not 64 lowercase hex", path, i, e.Key)
		}
		// The other names follow from the key; never trust a hand edit
		// that makes them disagree.
		full, err := NewEntry(pub, e.Read, e.Write)
		if err != nil {
			return nil, nil, err
		}
		e.PeerID, e.OnionAddress = full.PeerID, full.OnionAddress
		l.entries[e.Key] = e
	}
	return l, fi, nil
}

func save(dir string, l *List) error {
	b, err := json.MarshalIndent(l.Entries(), "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	tmp, err := os.CreateTemp(dir, ".trust-*.json")
	if err != nil {
		return fmt.Errorf("trust: save: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("trust: save: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("trust: save: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("trust: save: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, File)); err != nil {
		return fmt.Errorf("trust: save: %w", err)
	}
	return nil
}

// writeMu serialises read-modify-write cycles within one process (the
// agent's invite handler and its API); a lock on trust.json.lock does so
// between processes (the CLI and the agent).
var writeMu sync.Mutex

// lockWait bounds the wait for another process's change.
const lockWait = 30 * time.Second

// Update applies fn to the list in dir and saves the result.
func Update(dir string, fn func(l *List) error) error {
	writeMu.Lock()
	defer writeMu.Unlock()
	unlock, err := platform.LockPath(filepath.Join(dir, File+".lock"), lockWait)
	if err != nil {
		return fmt.Errorf("trust: %w", err)
	}
	defer unlock()
	l, err := Load(dir)
	if err != nil {
		return err
	}
	if err := fn(l); err != nil {
		return err
	}
	return save(dir, l)
}

// Grant adds pub with the given roles, or widens an existing entry's
// roles (a grant never takes a role away; use Set for that). Alias, if
// not empty, replaces the entry's alias; it must not name another peer.
func Grant(dir string, pub ed25519.PublicKey, read, write bool, alias, via string) (Entry, error) {
	return put(dir, pub, alias, via, func(e *Entry) { e.Read, e.Write = e.Read || read, e.Write || write })
}

// Set replaces the roles of pub (adding it when new).
func Set(dir string, pub ed25519.PublicKey, read, write bool, alias, via string) (Entry, error) {
	return put(dir, pub, alias, via, func(e *Entry) { e.Read, e.Write = read, write })
}

// put adds or updates pub's entry, with roles set by roles.
func put(dir string, pub ed25519.PublicKey, alias, via string, roles func(*Entry)) (Entry, error) {
	var out Entry
	err := Update(dir, func(l *List) error {
		e, ok := l.Lookup(pub)
		if !ok {
			var err error
			if e, err = NewEntry(pub, false, false); err != nil {
				return err
			}
			e.Via = via
		}
		roles(&e)
		if alias != "" {
			if err := l.checkAlias(alias, e.Key); err != nil {
				return err
			}
			e.Alias = alias
		}
		l.entries[e.Key] = e
		out = e
		return nil
	})
	return out, err
}

// CheckAlias reports whether alias may name pub in dir's list, so a
// caller can refuse a bad alias before doing anything it cannot undo.
func CheckAlias(dir string, pub ed25519.PublicKey, alias string) error {
	if alias == "" {
		return nil
	}
	l, err := Load(dir)
	if err != nil {
		return err
	}
	return l.checkAlias(alias, hex.EncodeToString(pub))
}

func (l *List) checkAlias(alias, key string) error {
	if _, err := identity.ParsePeerKey(alias); err == nil {
		return fmt.Errorf("trust: alias %q reads as a peer key; choose a name", alias)
	}
	if strings.ContainsAny(alias, " \t\r\n") || len(alias) > 64 {
		return fmt.Errorf("trust: alias %q must be one word of at most 64 bytes", alias)
	}
	for _, o := range l.entries {
		if o.Alias == alias && o.Key != key {
			return fmt.Errorf("trust: alias %q already names %s", alias, o.OnionAddress)
		}
	}
	return nil
}

// Remove deletes the peer named by name (alias, key, onion address or
// peer ID) and returns its entry.
func Remove(dir, name string) (Entry, error) {
	var out Entry
	err := Update(dir, func(l *List) error {
		pub, err := l.Resolve(name)
		if err != nil {
			return err
		}
		e, ok := l.Lookup(pub)
		if !ok {
			return fmt.Errorf("%w: %s", ErrUnknown, onion.Hostname(pub))
		}
		delete(l.entries, e.Key)
		out = e
		return nil
	})
	return out, err
}

// Book is the live trust list of a running agent: Current re-reads the
// file when it changed on disk, so edits by the CLI apply at the next
// session without a restart.
type Book struct {
	dir string

	mu   sync.Mutex
	list *List
	fi   os.FileInfo // of the file list was read from
	err  error
}

// NewBook loads the list in dir.
func NewBook(dir string) (*Book, error) {
	b := &Book{dir: dir}
	if _, err := b.Current(); err != nil {
		return nil, err
	}
	return b, nil
}

// Current returns the list as it is on disk now. When the file turned
// unreadable or invalid, it keeps the last good list and returns the
// error as well, so a bad hand edit is reported and never widens access.
func (b *Book) Current() (*List, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	path := filepath.Join(b.dir, File)
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		b.list, b.fi, b.err = &List{entries: map[string]Entry{}}, nil, nil
		return b.list, nil
	case err != nil:
		return b.fallback(err)
	}
	// Every save renames a new file into place, so the same file (inode)
	// with the same time and size is the list already read.
	if b.list != nil && b.err == nil && b.fi != nil && os.SameFile(fi, b.fi) && fi.ModTime().Equal(b.fi.ModTime()) && fi.Size() == b.fi.Size() {
		return b.list, nil
	}
	l, lfi, err := load(path)
	if err != nil {
		return b.fallback(err)
	}
	b.list, b.err, b.fi = l, nil, lfi
	return l, nil
}

func (b *Book) fallback(err error) (*List, error) {
	b.err = err
	if b.list == nil {
		// Nothing good was ever read: trust nobody.
		return &List{entries: map[string]Entry{}}, err
	}
	return b.list, err
}
