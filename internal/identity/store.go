package identity

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/mmogit/mmogit/internal/platform"
)

// SeedFile is the name of the seed file inside the config directory.
const SeedFile = ".seed"

// ErrNoIdentity means the config directory has no seed yet.
var ErrNoIdentity = errors.New("identity: no identity; run `mmogit init` first")

// ErrExists means init would overwrite an existing seed.
var ErrExists = errors.New("identity: an identity already exists; use --force to replace it (the old key is lost unless you saved its words)")

// PermissionError is returned when the seed file is readable by others. Like
// ssh with a private key, we refuse to use it rather than silently fix it.
type PermissionError struct {
	Path string
	Mode fs.FileMode
}

func (e *PermissionError) Error() string {
	return fmt.Sprintf("identity: seed file %s has mode %04o: it must not be readable by group or others; run `chmod 600 %s`", e.Path, e.Mode.Perm(), e.Path)
}

// Save writes phrase to <dir>/.seed with mode 0600 (dir 0700), replacing an
// existing seed only when force is set. The write is atomic: a crash leaves
// either the old seed or the new one.
func Save(dir, phrase string, force bool) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("identity: create config dir: %w", err)
	}
	p := filepath.Join(dir, SeedFile)
	if _, err := os.Lstat(p); err == nil && !force {
		return fmt.Errorf("%w: %s", ErrExists, p)
	}
	tmp, err := os.CreateTemp(dir, ".seed-*")
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("identity: %w", err)
	}
	if _, err := tmp.WriteString(phrase + "\n"); err != nil {
		tmp.Close()
		return fmt.Errorf("identity: write seed: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("identity: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	return nil
}

// Load reads <dir>/.seed and derives the identity. It refuses a seed file
// that group or others can read or write.
func Load(dir string) (*Identity, error) {
	p := filepath.Join(dir, SeedFile)
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w (no %s)", ErrNoIdentity, p)
	}
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if platform.OthersAccess(fi) != 0 {
		return nil, &PermissionError{Path: p, Mode: fi.Mode()}
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	// The file holds one phrase; only the trailing newline we wrote is not
	// part of it (YOLO phrases are hashed byte for byte).
	phrase := string(b)
	if n := len(phrase); n > 0 && phrase[n-1] == '\n' {
		phrase = phrase[:n-1]
	}
	id, err := FromPhrase(phrase)
	if err != nil {
		return nil, fmt.Errorf("identity: %s: %w", p, err)
	}
	return id, nil
}
