//go:build unix

package platform

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// TryLock takes an exclusive lock on f without waiting. The lock belongs
// to this open file: a second open of the same path, even in this
// process, does not get it. Unlock or closing f releases it, and so does
// the process's death. It returns ErrWouldBlock when the lock is held.
func TryLock(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.EWOULDBLOCK), errors.Is(err, syscall.EINTR):
		return ErrWouldBlock
	default:
		return fmt.Errorf("platform: lock %s: %w", f.Name(), err)
	}
}

// Unlock releases a lock taken with TryLock.
func Unlock(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}
