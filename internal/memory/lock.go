package memory

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/mmogit/mmogit/internal/platform"
)

// lockRepo serialises the read-modify-write of branches between goroutines
// (writeSem) and between processes (a lock on <gitdir>/mmogit.lock, flock on
// Unix, LockFileEx on Windows). The locks belong to an open file, so two opens in one process
// exclude each other as well; the semaphore only keeps goroutines from
// spinning on the file. Waiting honours ctx.
func (s *Store) lockRepo(ctx context.Context) (unlock func(), err error) {
	select {
	case s.writeSem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("memory: wait for repository lock: %w", ctx.Err())
	}
	f, err := os.OpenFile(s.lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		<-s.writeSem
		return nil, fmt.Errorf("memory: open lock file: %w", err)
	}
	release := func() { f.Close(); <-s.writeSem }
	for delay := time.Millisecond; ; {
		err := platform.TryLock(f)
		if err == nil {
			break
		}
		if !errors.Is(err, platform.ErrWouldBlock) {
			release()
			return nil, fmt.Errorf("memory: lock repository: %w", err)
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			release()
			return nil, fmt.Errorf("memory: wait for repository lock: %w", ctx.Err())
		}
		delay = min(2*delay, 20*time.Millisecond)
	}
	// Closing the file drops the lock.
	return release, nil
}
