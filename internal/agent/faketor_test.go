package agent_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/agent"
	"github.com/mmogit/mmogit/internal/config"
	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/localapi"
	"github.com/mmogit/mmogit/internal/onion"
	"github.com/mmogit/mmogit/internal/socks/sockstest"
	"github.com/mmogit/mmogit/internal/tor"
	"github.com/mmogit/mmogit/internal/torctl/torctltest"
)

// fakeTor stands in for a running tor that a tor-only agent attaches to
// (tor.attach): a fake control port, reached through a proxy the test can
// sever (tor exiting), and a fake SOCKS port. ADD_ONION answers with the
// service ID of the key the agent is expected to publish and reports the
// descriptor uploaded at once, unless failPublish says to refuse it.
type fakeTor struct {
	ctl   *torctltest.Server
	socks *sockstest.Server
	proxy *ctlProxy
	id    *identity.Identity

	failPublish atomic.Int32 // ADD_ONIONs still to refuse
	addOnions   atomic.Int32 // ADD_ONIONs received
}

func newFakeTor(t *testing.T, id *identity.Identity) *fakeTor {
	t.Helper()
	f := &fakeTor{ctl: torctltest.NewServer(t), socks: sockstest.NewServer(t), id: id}
	f.proxy = newCtlProxy(t, f.ctl.Addr())
	f.ctl.SetInfo("net/listeners/socks", `"`+f.socks.Addr()+`"`)
	sid := strings.TrimSuffix(onion.Encode(id.Public), onion.Suffix)
	f.ctl.Handle("ADD_ONION", func(string) []string {
		f.addOnions.Add(1)
		if f.failPublish.Add(-1) >= 0 {
			return []string{"551 Failed to add onion service (fake)"}
		}
		f.failPublish.Store(0)
		// After the reply, as tor uploads the descriptor a moment later.
		time.AfterFunc(50*time.Millisecond, func() {
			f.ctl.Emit("650 HS_DESC UPLOADED " + sid + " UNKNOWN $0123456789ABCDEF0123456789ABCDEF01234567")
		})
		return []string{"250-ServiceID=" + sid, "250 OK"}
	})
	return f
}

// config is a tor-only agent configuration attached to the fake tor.
func (f *fakeTor) config() config.Config {
	cfg := config.Default()
	cfg.Transport = config.Tor
	cfg.Services = nil
	cfg.Tor.Attach = &config.Attach{Control: f.proxy.addr(), Socks: f.socks.Addr(), CookiePath: f.ctl.CookiePath}
	return cfg
}

// ctlProxy forwards TCP connections to a target and can cut them all, as
// tor exiting would; it counts the connections still open.
type ctlProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex // mu guards conns
	conns map[net.Conn]net.Conn
}

func newCtlProxy(t *testing.T, target string) *ctlProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &ctlProxy{ln: ln, target: target, conns: map[net.Conn]net.Conn{}}
	t.Cleanup(func() { ln.Close(); p.sever() })
	go p.serve()
	return p
}

func (p *ctlProxy) addr() string { return p.ln.Addr().String() }

func (p *ctlProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c] = u
		p.mu.Unlock()
		go func() {
			done := make(chan struct{}, 2)
			go func() { io.Copy(u, c); done <- struct{}{} }()
			go func() { io.Copy(c, u); done <- struct{}{} }()
			<-done
			c.Close()
			u.Close()
			p.mu.Lock()
			delete(p.conns, c)
			p.mu.Unlock()
		}()
	}
}

// sever closes every open connection.
func (p *ctlProxy) sever() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c, u := range p.conns {
		c.Close()
		u.Close()
	}
}

func (p *ctlProxy) open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// TestTorRestartStopsFailedTor: tor goes away; the agent reconnects, but
// publishing the onion service fails twice. Each failed tor is stopped
// before the next try (here: its control connection closed, as for any
// attached tor; a tor the agent started is shut down), so after recovery
// exactly one tor connection remains, the service is published and the
// restart is counted once.
func TestTorRestartStopsFailedTor(t *testing.T) {
	id := newIdentity(t)
	ft := newFakeTor(t, id)
	ta := startAgent(t, agentSetup{cfg: ft.config(), id: id})
	if n := ft.proxy.open(); n != 1 {
		t.Fatalf("%d control connections after start, want 1", n)
	}
	ft.failPublish.Store(2)
	ft.proxy.sever()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var st localapi.Status
	for {
		var err error
		st, err = ta.api.Status(ctx)
		if err == nil && st.Published && st.TorRestarts > 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("agent did not recover: %+v\n%s", st, ta.log.buf.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := ft.addOnions.Load(); got != 4 {
		t.Errorf("%d ADD_ONIONs, want 4 (start, two refused, the one that worked)", got)
	}
	if st.TorRestarts != 1 {
		t.Errorf("tor restarts %d, want 1", st.TorRestarts)
	}
	// The failed tors' connections close as the agent stops them.
	deadline := time.Now().Add(5 * time.Second)
	for ft.proxy.open() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d tor control connections open after recovery, want 1: the failed tors were left running", ft.proxy.open())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ta.log.count("tor restart failed") != 2 {
		t.Errorf("want 2 failed restarts logged:\n%s", ta.log.buf.String())
	}
}

// TestFrozenPeerUnreachable: a peer whose onion service never answers
// (tor sits on the CONNECT) ends in the typed onion_unreachable error,
// because the SOCKS dial gives up before the host's dial limit, and is
// retried with backoff: four attempts, and no wait after the last.
func TestFrozenPeerUnreachable(t *testing.T) {
	id := newIdentity(t)
	ft := newFakeTor(t, id)
	var waits atomic.Int32 // waits between attempts
	ta := startAgent(t, agentSetup{cfg: ft.config(), id: id, dialTimeout: 1200 * time.Millisecond,
		retryWait: func(d time.Duration) time.Duration { waits.Add(1); return d / 50 }})
	frozen := newIdentity(t).OnionAddress()
	ft.socks.Stall(frozen)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	rs, err := ta.api.Sync(ctx, frozen)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 {
		t.Fatalf("results %+v", rs)
	}
	r := rs[0]
	t.Logf("sync with a frozen peer after %.1fs: %s (%s)", time.Since(start).Seconds(), r.Error, r.ErrorKind)
	if r.ErrorKind != "onion_unreachable" || r.RetryAfterMs <= 0 {
		t.Errorf("kind %q retry_after %d ms, want onion_unreachable and a retry hint: %s", r.ErrorKind, r.RetryAfterMs, r.Error)
	}
	dials := 0
	for _, q := range ft.socks.Requests() {
		if q.Host == frozen {
			dials++
		}
	}
	if dials != 4 {
		t.Errorf("%d dials of the frozen peer, want 4", dials)
	}
	if n := waits.Load(); n != 3 {
		t.Errorf("%d waits between attempts, want 3 (none after the last attempt)", n)
	}
	// The same through the CLI's error path: `tor connect` reports the kind.
	_, err = ta.api.Connect(ctx, frozen)
	var ae *localapi.APIError
	if !errors.As(err, &ae) || ae.Kind != "onion_unreachable" {
		t.Errorf("connect to a frozen peer: %v, want kind onion_unreachable", err)
	}
}

// TestStatusDuringStartup: the API serves while tor starts; Status and
// Rotate, called from the first moment on, must work and not race with
// the agent's startup. Run with -race; note that the race detector counts
// socket I/O as synchronization, so it can miss a race between goroutines
// that both talk over sockets (a.tor's assignment after the API started
// serving was such a one: it is now made in New).
func TestStatusDuringStartup(t *testing.T) {
	id := newIdentity(t)
	ft := newFakeTor(t, id)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	calls := atomic.Int32{}
	ta := startAgent(t, agentSetup{cfg: ft.config(), id: id, before: func(dir string) {
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := &localapi.Client{Dir: dir}
				for {
					select {
					case <-stop:
						return
					default:
					}
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					if _, err := c.Status(ctx); err == nil {
						calls.Add(1)
					}
					c.Rotate(ctx)
					cancel()
				}
			}()
		}
	}})
	close(stop)
	wg.Wait()
	if calls.Load() == 0 {
		t.Error("no Status call got through while the agent started")
	}
	if _, err := ta.api.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestBootstrapStallHidesDoneWarning: tor's bootstrap stalls and its only
// warning event says "DONE" (a relay connection that closed normally):
// the agent's start-up error does not present that as the reason.
func TestBootstrapStallHidesDoneWarning(t *testing.T) {
	id := newIdentity(t)
	ft := newFakeTor(t, id)
	ft.ctl.SetInfo("status/bootstrap-phase", `NOTICE BOOTSTRAP PROGRESS=5 TAG=conn SUMMARY="Connecting to a relay"`)
	cfg := ft.config()
	cfg.Tor.BootstrapTimeout = config.Duration(time.Second)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agent.Options{ConfigDir: dir, Config: cfg, Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	for !slices.ContainsFunc(ft.ctl.Commands(), func(c string) bool { return strings.Contains(c, "SETEVENTS") && strings.Contains(c, "STATUS_CLIENT") }) {
		if ctx.Err() != nil {
			t.Fatal("agent never subscribed to STATUS_CLIENT")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ft.ctl.Emit(`650 STATUS_CLIENT WARN BOOTSTRAP PROGRESS=5 TAG=conn SUMMARY="Connecting to a relay" WARNING="DONE" REASON=DONE COUNT=1 RECOMMENDATION=ignore HOSTID="AB" HOSTADDR="127.0.0.1:1"`)
	err = <-done
	if !errors.Is(err, tor.ErrBootstrapStalled) {
		t.Fatalf("agent run: %v, want a stalled bootstrap", err)
	}
	if strings.Contains(err.Error(), "DONE") {
		t.Errorf("start-up error gives tor's DONE as the reason: %v", err)
	}
}
