//go:build windows

package platform

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/windows"
)

// Windows byte-range locks are mandatory: a locked range cannot be read
// by others. One byte far beyond any real content is locked, so the file
// itself (the agent's lock file holds its pid) stays readable.
const lockOffsetHigh = 1 << 30 // byte offset 2^62

func lockRange() *windows.Overlapped { return &windows.Overlapped{OffsetHigh: lockOffsetHigh} }

// TryLock takes an exclusive lock on f without waiting. The lock belongs
// to this open file: a second open of the same path, even in this
// process, does not get it. Unlock or closing f releases it, and so does
// the process's death. It returns ErrWouldBlock when the lock is held.
func TryLock(f *os.File) error {
	err := windows.LockFileEx(windows.Handle(f.Fd()),
		windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, lockRange())
	switch {
	case err == nil:
		return nil
	case errors.Is(err, windows.ERROR_LOCK_VIOLATION), errors.Is(err, windows.ERROR_IO_PENDING):
		return ErrWouldBlock
	default:
		return fmt.Errorf("platform: lock %s: %w", f.Name(), err)
	}
}

// Unlock releases a lock taken with TryLock.
func Unlock(f *os.File) error {
	return windows.UnlockFileEx(windows.Handle(f.Fd()), 0, 1, 0, lockRange())
}
