package localapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

type fakeBackend struct{ shutdown chan struct{} }

type kindErr struct{}

func (kindErr) Error() string { return "peer unreachable" }
func (kindErr) Kind() string  { return "onion_unreachable" }

func (f *fakeBackend) Status(context.Context) Status {
	return Status{PeerID: "12D3KooWtest", BootstrapProgress: 100, Published: true}
}
func (f *fakeBackend) Connect(_ context.Context, r ConnectRequest) (ConnectResult, error) {
	if r.Target == "bad" {
		return ConnectResult{}, kindErr{}
	}
	return ConnectResult{PeerID: r.Target, RTTMillis: 1.5}, nil
}
func (f *fakeBackend) Sync(_ context.Context, _ SyncRequest, progress func(SyncProgress)) ([]SyncResult, error) {
	if progress != nil {
		for i := 1; i <= 3; i++ {
			progress(SyncProgress{PeerID: "p", Received: i, Wanted: 3})
		}
	}
	return []SyncResult{{PeerID: "p", Received: 3}}, nil
}
func (f *fakeBackend) Peers(context.Context) ([]Peer, error) { return []Peer{{PeerID: "p"}}, nil }
func (f *fakeBackend) Advertise(_ context.Context, r AdvertiseRequest) (Advertisement, error) {
	return Advertisement{Services: r.Services}, nil
}
func (f *fakeBackend) Discover(_ context.Context, s string) (DiscoverResult, error) {
	return DiscoverResult{Service: s}, nil
}
func (f *fakeBackend) Shutdown() { close(f.shutdown) }
func (f *fakeBackend) Join(_ context.Context, r JoinRequest) (JoinResult, error) {
	return JoinResult{TrustedRead: r.Read}, nil
}
func (f *fakeBackend) Rotate(context.Context) (RotateResult, error) {
	return RotateResult{DeferredMs: 1}, nil
}

func TestServerClient(t *testing.T) {
	dir := t.TempDir()
	b := &fakeBackend{shutdown: make(chan struct{})}
	s := NewServer(b, nil)
	if err := s.Listen(dir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, SocketName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", fi.Mode(), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	defer func() { cancel(); <-done }()

	// A second server on the same dir must refuse.
	if err := NewServer(b, nil).Listen(dir); !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("second Listen = %v", err)
	}
	c := &Client{Dir: dir}
	st, err := c.Status(ctx)
	if err != nil || st.BootstrapProgress != 100 || !st.Published {
		t.Fatalf("status %+v %v", st, err)
	}
	r, err := c.Connect(ctx, "x")
	if err != nil || r.PeerID != "x" {
		t.Fatalf("connect %+v %v", r, err)
	}
	_, err = c.Connect(ctx, "bad")
	var ae *APIError
	if !errors.As(err, &ae) || ae.Kind != "onion_unreachable" {
		t.Fatalf("error kind lost: %v", err)
	}
	if _, err := c.Discover(ctx, ""); !errors.As(err, &ae) || ae.Status != 400 {
		t.Fatalf("missing service: %v", err)
	}
	if res, err := c.Sync(ctx, ""); err != nil || res[0].Received != 3 {
		t.Fatalf("sync %v %v", res, err)
	}
	var seen []int
	res, err := c.SyncWithProgress(ctx, "", func(p SyncProgress) { seen = append(seen, p.Received) })
	if err != nil || res[0].Received != 3 || len(seen) == 0 || seen[len(seen)-1] != 3 {
		t.Fatalf("sync with progress: %v %v %v", res, seen, err)
	}
	if err := c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.shutdown:
	case <-time.After(5 * time.Second):
		t.Fatal("shutdown not delivered")
	}
}

func TestStaleSocketAndNotRunning(t *testing.T) {
	dir := t.TempDir()
	c := &Client{Dir: dir}
	if _, err := c.Status(context.Background()); !IsNotRunning(err) {
		t.Fatalf("no agent: %v", err)
	}
	// Leave a socket file nobody listens on, as a killed agent would.
	p := filepath.Join(dir, SocketName)
	ln, err := net.Listen("unix", p)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Stat(p); err != nil {
		t.Fatal("stale socket not left behind")
	}
	s := NewServer(&fakeBackend{}, nil)
	if err := s.Listen(dir); err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	s.ln.Close()
}

// TestClientConcurrent: one Client used from many goroutines at once, as
// a program embedding the agent would. Run with -race to see the lazy
// transport set-up race that a plain nil check had.
func TestClientConcurrent(t *testing.T) {
	dir := t.TempDir()
	s := NewServer(&fakeBackend{shutdown: make(chan struct{})}, nil)
	if err := s.Listen(dir); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	defer func() { cancel(); <-done }()

	c := &Client{Dir: dir}
	errs := make(chan error, 16)
	for range cap(errs) {
		go func() {
			st, err := c.Status(ctx)
			if err == nil && st.PeerID != "12D3KooWtest" {
				err = fmt.Errorf("status %+v", st)
			}
			errs <- err
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
