package memory

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// lockRepo serialises the read-modify-write of branches between goroutines
// (writeSem) and between processes (an flock on <gitdir>/mmogit.lock). flock
// locks belong to an open file description, so two opens in one process
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
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
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
	// Closing the descriptor drops the flock.
	return release, nil
}
