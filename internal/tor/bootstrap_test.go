package tor

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/torctl/torctltest"
)

// These tests drive the bootstrap logic through Attach against the fake
// control port, where the test decides what tor reports; the real tor can
// only be bootstrapped on the private network (see testnet_test.go).

func awaitCommand(t *testing.T, srv *torctltest.Server, cmd string) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if slices.Contains(srv.Commands(), cmd) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("command %q never sent; got %q", cmd, srv.Commands())
}

func TestAttachBootstrapProgress(t *testing.T) {
	srv := torctltest.NewServer(t)
	srv.SetInfo("status/bootstrap-phase", `NOTICE BOOTSTRAP PROGRESS=10 TAG=conn_done SUMMARY="Connected to a relay"`)
	srv.SetInfo("net/listeners/socks", `"127.0.0.1:39999" "[::1]:39999"`)
	var (
		mu  sync.Mutex
		got []int
	)
	type res struct {
		d   *Daemon
		err error
	}
	done := make(chan res, 1)
	go func() {
		d, err := Attach(testCtx(t, 10*time.Second), AttachConfig{
			ControlAddr: srv.Addr(),
			Progress: func(s BootstrapStatus) {
				mu.Lock()
				got = append(got, s.Progress)
				mu.Unlock()
			},
		})
		done <- res{d, err}
	}()
	awaitCommand(t, srv, "SETEVENTS STATUS_CLIENT")
	srv.Emit(`650 STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=50 TAG=loading_descriptors SUMMARY="Loading relay descriptors"`)
	srv.Emit(`650 STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=50 TAG=loading_descriptors SUMMARY="Loading relay descriptors"`)
	srv.Emit(`650 STATUS_CLIENT NOTICE CIRCUIT_ESTABLISHED`)
	srv.Emit(`650 STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"`)
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.d.Stop(testCtx(t, time.Second))
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, []int{10, 50, 100}) {
		t.Fatalf("progress reports %v, want [10 50 100]", got)
	}
	if r.d.SocksAddr() != "127.0.0.1:39999" || r.d.Version().Raw != "0.4.9.11" {
		t.Fatalf("socks %q version %v", r.d.SocksAddr(), r.d.Version())
	}
}

func TestAttachBootstrapStallReportsWarning(t *testing.T) {
	srv := torctltest.NewServer(t)
	srv.SetInfo("status/bootstrap-phase", `NOTICE BOOTSTRAP PROGRESS=5 TAG=conn SUMMARY="Connecting to a relay"`)
	srv.SetInfo("net/listeners/socks", `"127.0.0.1:39999"`)
	errc := make(chan error, 1)
	go func() {
		_, err := Attach(testCtx(t, 10*time.Second), AttachConfig{ControlAddr: srv.Addr(), BootstrapTimeout: 300 * time.Millisecond})
		errc <- err
	}()
	awaitCommand(t, srv, "SETEVENTS STATUS_CLIENT")
	srv.Emit(`650 STATUS_CLIENT WARN BOOTSTRAP PROGRESS=5 TAG=conn SUMMARY="Connecting to a relay" WARNING="Connection refused" REASON=CONNECTREFUSED COUNT=1 RECOMMENDATION=ignore HOSTID="AB" HOSTADDR="127.0.0.1:1"`)
	err := <-errc
	var be *BootstrapError
	if !errors.As(err, &be) || !errors.Is(err, ErrBootstrapStalled) {
		t.Fatalf("err = %v, want BootstrapError", err)
	}
	if be.Last.Progress != 5 || !strings.Contains(err.Error(), "Connection refused (CONNECTREFUSED)") {
		t.Fatalf("err = %v", err)
	}
}
