package testnet

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	runShaperHelper()
	code := m.Run()
	if err := CloseShared(); err != nil {
		println("testnet: close shared:", err.Error())
	}
	os.Exit(code)
}

func skipShort(t testing.TB) {
	if testing.Short() {
		t.Skip("starts a private Tor network; skipped in -short mode")
	}
}

// TestSharedNetwork covers the joiner and onion service paths on the
// shared network: a second tor joins through ClientTorrc, and onion
// services on each tor are reached through the other.
func TestSharedNetwork(t *testing.T) {
	skipShort(t)
	n := Shared(t)
	dumpLogs(t, n.Info().Dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t0 := time.Now()
	j := startJoiner(t, ctx, n.ClientTorrc())
	t.Logf("joiner bootstrapped in %.1fs", time.Since(t0).Seconds())

	cc, err := dialControl(ctx, n.ControlAddr(), n.CookiePath())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()

	tests := []struct {
		name   string
		host   *ctlConn // tor that publishes the service
		socks  string   // tor that dials it
		target int
	}{
		{"HostedByJoinerDialedByClient", j.ctl, n.SocksAddr(), echoServer(t)},
		{"HostedByClientDialedByJoiner", cc, j.socks, echoServer(t)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t0 := time.Now()
			addr := addOnion(t, ctx, tc.host, tc.target)
			if err := awaitEcho(ctx, tc.socks, addr); err != nil {
				t.Fatalf("echo through %s: %v", addr, err)
			}
			t.Logf("onion reachable %.1fs after ADD_ONION", time.Since(t0).Seconds())
		})
	}
}

// TestDetachedBridgeStop starts a detached network with a bridge, joins it
// through the bridge only, and stops it with Stop as `mmogit testnet down`
// would.
func TestDetachedBridgeStop(t *testing.T) {
	skipShort(t)
	dir := t.TempDir()
	dumpLogs(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n, err := Start(ctx, Options{Dir: dir, Relays: 1, Bridge: true, Detached: true, Progress: logProgress(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })

	info, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(info, n.Info()) {
		t.Errorf("Load = %+v, want %+v", info, n.Info())
	}
	if len(info.PIDs) != 6 { // 3 authorities, relay, bridge, client
		t.Errorf("PIDs = %v, want 6", info.PIDs)
	}
	if !strings.HasPrefix(n.BridgeLine(), "obfs4 127.0.0.1:") || !strings.Contains(n.BridgeLine(), " cert=") {
		t.Errorf("BridgeLine = %q", n.BridgeLine())
	}
	for _, pid := range info.PIDs {
		if sid, _ := sessionID(pid); sid != pid {
			t.Errorf("detached tor %d is in session %d, want its own", pid, sid)
		}
	}

	if _, err := Start(ctx, Options{Dir: dir}); !errors.Is(err, ErrAlreadyRunning) {
		t.Errorf("second Start in %s: %v, want ErrAlreadyRunning", dir, err)
	}

	t0 := time.Now()
	startJoiner(t, ctx, n.BridgeClientTorrc())
	t.Logf("bridge client bootstrapped in %.1fs", time.Since(t0).Seconds())

	if err := Stop(dir); err != nil {
		t.Fatal(err)
	}
	assertGone(t, info.PIDs)
	if err := Stop(dir); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// TestClose checks that Close stops every process and may be repeated.
func TestClose(t *testing.T) {
	skipShort(t)
	dir := t.TempDir()
	dumpLogs(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n, err := Start(ctx, Options{Dir: dir, Relays: 2, Progress: logProgress(t)})
	if err != nil {
		t.Fatal(err)
	}
	pids := n.Info().PIDs
	if len(pids) != 6 {
		t.Errorf("PIDs = %v, want 6", pids)
	}
	if got := pidsUsing(t, dir); !slices.Equal(got, sorted(pids)) {
		t.Errorf("processes using %s = %v, want %v", dir, got, sorted(pids))
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, pids)
	if err := n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestStartErrors checks the failure paths: an early exit is reported
// with its log, and cancellation stops the start-up; neither leaves a
// process behind.
func TestStartErrors(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		timeout time.Duration
		check   func(t *testing.T, err error)
	}{
		{
			name:    "RelayExits",
			opts:    Options{extraTorrc: map[string][]string{"relay0": {"NoSuchOption 1"}}},
			timeout: time.Minute,
			check: func(t *testing.T, err error) {
				var ee *ExitError
				if !errors.As(err, &ee) || ee.Node != "relay0" || !strings.Contains(ee.Log, "NoSuchOption") {
					t.Errorf("err = %v, want ExitError for relay0 mentioning NoSuchOption", err)
				}
			},
		},
		{
			name:    "Cancelled",
			timeout: 3 * time.Second,
			check: func(t *testing.T, err error) {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("err = %v, want context.DeadlineExceeded", err)
				}
			},
		},
		{
			// A port that tor cannot bind fails every attempt the same
			// way; Start must retry, then report the bind failure.
			name:    "PortTaken",
			opts:    Options{extraTorrc: map[string][]string{"relay0": {"ORPort 127.0.0.1:" + strconv.Itoa(takenPort(t))}}},
			timeout: time.Minute,
			check: func(t *testing.T, err error) {
				var ee *ExitError
				if !errors.As(err, &ee) || !ee.addrInUse() {
					t.Errorf("err = %v, want ExitError with a bind failure", err)
				}
			},
		},
		{
			name:  "NoDir",
			check: func(t *testing.T, err error) { t.Log(err) },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name != "NoDir" {
				skipShort(t)
				tc.opts.Dir = t.TempDir()
			}
			ctx, cancel := context.WithTimeout(context.Background(), tc.timeout+time.Millisecond)
			defer cancel()
			var retries int
			tc.opts.Progress = func(s string) {
				if strings.Contains(s, "retrying") {
					retries++
				}
			}
			n, err := Start(ctx, tc.opts)
			if err == nil {
				n.Close()
				t.Fatal("Start succeeded")
			}
			tc.check(t, err)
			if tc.name == "PortTaken" && retries != 2 {
				t.Errorf("%d retries, want 2", retries)
			}
			if tc.opts.Dir != "" {
				if left := pidsUsing(t, tc.opts.Dir); len(left) > 0 {
					t.Errorf("processes left behind: %v", left)
				}
			}
		})
	}
}

func TestLoadMissing(t *testing.T) {
	if _, err := Load(t.TempDir()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of empty dir: %v, want fs.ErrNotExist", err)
	}
}

// pidsUsing lists the live processes whose command line names dir.
func pidsUsing(t testing.TB, dir string) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if processUsesDir(pid, dir) && processAlive(pid) {
			pids = append(pids, pid)
		}
	}
	return sorted(pids)
}

func sorted(s []int) []int {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// sessionID reads the session of pid from /proc/pid/stat (field 6).
func sessionID(pid int) (int, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return strconv.Atoi(f[3]) // state ppid pgrp session
}

// takenPort returns a loopback port held open until the test ends.
func takenPort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

func TestSharedCloseIsNoop(t *testing.T) {
	skipShort(t)
	n := Shared(t)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range n.Info().PIDs {
		if !processAlive(pid) {
			t.Errorf("shared tor %d died after Close", pid)
		}
	}
}
