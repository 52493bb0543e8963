package testnet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// shared is the one network of a test binary; see Shared.
var shared struct {
	once sync.Once
	mu   sync.Mutex // mu guards the fields below
	n    *Network
	err  error
}

// sharedPrefix names the directories of shared networks in os.TempDir;
// the PID after it lets a later binary remove directories of dead ones.
const sharedPrefix = "mmogit-testnet-shared-"

// Shared returns a network shared by all tests of the calling test binary,
// starting it on first use (~10 s), with the profile named by
// $MMOGIT_TESTNET_PROFILE (loopback when unset). If it cannot start, every caller fails
// with the same error. Tests must not Close it: its processes are owned by
// the test binary (TAKEOWNERSHIP) and exit when it does; a TestMain may
// call CloseShared after m.Run to stop them earlier and remove its
// directory. Directories of earlier binaries that died are removed here.
func Shared(t testing.TB) *Network {
	t.Helper()
	shared.once.Do(func() {
		n, err := startShared()
		shared.mu.Lock()
		shared.n, shared.err = n, err
		shared.mu.Unlock()
	})
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.err != nil {
		t.Fatalf("testnet: shared network: %v", shared.err)
	}
	if shared.n == nil {
		t.Fatal("testnet: shared network already closed by CloseShared")
	}
	return shared.n
}

// CloseShared stops the shared network, if one was started, and removes
// its directory. Call it from TestMain after m.Run.
func CloseShared() error {
	shared.mu.Lock()
	n := shared.n
	shared.n = nil
	shared.mu.Unlock()
	if n == nil {
		return nil
	}
	err := n.close()
	if rerr := os.RemoveAll(n.info.Dir); err == nil {
		err = rerr
	}
	return err
}

func startShared() (*Network, error) {
	sweepShared()
	profile, err := ProfileFromEnv()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", sharedPrefix+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return nil, fmt.Errorf("testnet: shared: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	n, err := Start(ctx, Options{Dir: dir, Profile: profile})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	n.shared = true
	return n, nil
}

// sweepShared removes shared-network directories whose test binary is
// gone; their tor processes died with it.
func sweepShared() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), sharedPrefix+"*"))
	for _, d := range dirs {
		rest := strings.TrimPrefix(filepath.Base(d), sharedPrefix)
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		os.RemoveAll(d)
	}
}
