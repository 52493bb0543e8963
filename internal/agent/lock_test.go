package agent

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestAcquireLock: one agent per config dir; the second is told the
// first's pid, and the lock is free again after release.
func TestAcquireLock(t *testing.T) {
	dir := t.TempDir()
	l, err := acquireLock(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = acquireLock(dir)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("second lock: %v, want ErrLocked naming pid %d", err, os.Getpid())
	}
	l.release()
	l2, err := acquireLock(dir)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	l2.release()
}
