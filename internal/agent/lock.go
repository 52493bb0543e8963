package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mmogit/mmogit/internal/platform"
)

// ErrLocked means another agent owns the config directory.
var ErrLocked = errors.New("agent: another mmogit agent is already running for this config dir")

// lockFile holds an exclusive lock (flock; LockFileEx on Windows) on <dir>/agent.lock for the agent's
// lifetime; the kernel drops it if the agent dies, so no stale locks.
type lockFile struct{ f *os.File }

func acquireLock(dir string) (*lockFile, error) {
	p := filepath.Join(dir, "agent.lock")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("agent: lock: %w", err)
	}
	if err := platform.TryLock(f); err != nil {
		b, _ := os.ReadFile(p)
		f.Close()
		pid := strings.TrimSpace(string(b))
		if _, perr := strconv.Atoi(pid); perr != nil {
			pid = "?"
		}
		return nil, fmt.Errorf("%w (pid %s, %s); stop it with `mmogit tor stop`", ErrLocked, pid, dir)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return &lockFile{f: f}, nil
}

func (l *lockFile) release() {
	if l == nil || l.f == nil {
		return
	}
	platform.Unlock(l.f)
	l.f.Close()
}
