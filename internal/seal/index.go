package seal

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mmogit/mmogit/internal/memory"
	"github.com/mmogit/mmogit/internal/platform"
)

// IndexFile is the recipient index inside the config directory.
const IndexFile = "recipients.json"

// indexLockWait bounds how long AddToIndex waits for another writer: the
// lock is held only for a read, a merge and a rename.
const indexLockWait = 30 * time.Second

// Index maps the ID of one of our own sealed messages to the 64-hex keys
// of its recipients other than the author. Only messages sealed to someone
// besides the author have an entry. Recipients are never written into a
// message; this local file is the only place they are kept, so that the
// agent knows which peers may receive which message.
type Index map[string][]string

// Recipients returns the recipients recorded for message id (nil if none).
func (ix Index) Recipients(id string) []string { return ix[id] }

// LoadIndex reads <configDir>/recipients.json; a missing file is an empty
// index.
func LoadIndex(configDir string) (Index, error) {
	p := filepath.Join(configDir, IndexFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Index{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("seal: read recipient index: %w", err)
	}
	ix := Index{}
	if err := json.Unmarshal(b, &ix); err != nil {
		return nil, fmt.Errorf("seal: parse recipient index %s: %w", p, err)
	}
	return ix, nil
}

// AddToIndex records recipients (64-hex keys, merged with any already
// recorded) for message id. Concurrent writers, in this process or others,
// are serialised with an flock on recipients.json.lock; the file is
// replaced atomically (temp file in the same directory, then rename), mode
// 0600, so a reader never sees half a file.
func AddToIndex(configDir, id string, recipients []string) error {
	if !memory.IsID(id) {
		return fmt.Errorf("seal: index: %q is not a message ID", id)
	}
	add := make([]string, 0, len(recipients))
	for _, r := range recipients {
		r = strings.ToLower(strings.TrimSpace(r))
		if b, err := hex.DecodeString(r); err != nil || len(b) != 32 {
			return fmt.Errorf("seal: index: recipient %q is not a 64-hex key", r)
		}
		add = append(add, r)
	}
	if len(add) == 0 {
		return nil
	}
	if err := os.MkdirAll(configDir, 0o700); err != nil {
		return fmt.Errorf("seal: index: %w", err)
	}
	unlock, err := lockIndex(filepath.Join(configDir, IndexFile+".lock"))
	if err != nil {
		return err
	}
	defer unlock()
	ix, err := LoadIndex(configDir)
	if err != nil {
		return err
	}
	merged := append(slices.Clone(ix[id]), add...)
	slices.Sort(merged)
	ix[id] = slices.Compact(merged)
	return writeIndex(configDir, ix)
}

func writeIndex(configDir string, ix Index) error {
	b, err := json.MarshalIndent(ix, "", "  ")
	if err != nil {
		return fmt.Errorf("seal: index: %w", err)
	}
	f, err := os.CreateTemp(configDir, IndexFile+".tmp*")
	if err != nil {
		return fmt.Errorf("seal: index: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	// CreateTemp makes it 0600 already; say so rather than rely on it.
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(append(b, '\n'))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(configDir, IndexFile))
	}
	if err != nil {
		return fmt.Errorf("seal: write recipient index: %w", err)
	}
	return nil
}

// lockIndex serialises index writers, in this process and others.
func lockIndex(path string) (unlock func(), err error) {
	unlock, err = platform.LockPath(path, indexLockWait)
	if err != nil {
		return nil, fmt.Errorf("seal: lock index: %w", err)
	}
	return unlock, nil
}
