package platform

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// LockPath takes an exclusive lock on the file at path (created 0600),
// polling so that a stuck holder gives an error after wait instead of a
// hang. The lock belongs to the open file, so it excludes goroutines of
// this process as well as other processes; unlock closes it.
func LockPath(path string, wait time.Duration) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("platform: open lock file: %w", err)
	}
	deadline := time.Now().Add(wait)
	for delay := time.Millisecond; ; delay = min(2*delay, 20*time.Millisecond) {
		err := TryLock(f)
		if err == nil {
			return func() { f.Close() }, nil // closing drops the lock
		}
		if !errors.Is(err, ErrWouldBlock) {
			f.Close()
			return nil, err
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("platform: lock %s held for over %v: %w", path, wait, err)
		}
		time.Sleep(delay)
	}
}
