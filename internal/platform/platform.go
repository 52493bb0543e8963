// Package platform holds the few operating-system calls that differ
// between Unix (Linux, macOS) and Windows: an exclusive lock on an open
// file, and starting, probing and stopping processes.
//
// Linux is where mmogit is developed and fully tested. The Unix
// implementation also serves macOS and the BSDs; the Windows one builds
// and keeps the same contracts with Win32 calls, but is little tested.
package platform

import "errors"

// ErrWouldBlock is returned by TryLock when another open file (in this
// process or another) holds the lock.
var ErrWouldBlock = errors.New("platform: file is locked by another holder")
