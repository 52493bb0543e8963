package tor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/socks"
	"github.com/mmogit/mmogit/internal/testnet"
)

// Helpers for the private-network integration tests: joining a network
// with a managed Daemon, an echo service, retrying dials the way a peer
// would, and proving that processes are gone.

// joined is a Daemon that joined a private network, with how long it took.
type joined struct {
	*Daemon
	bootstrap time.Duration // Start until bootstrapped to 100 %
	start     time.Time     // when Start was called
	procs     []proc        // tor and its children, recorded after Start
}

// startJoined starts a managed tor with the given torrc lines (to join a
// private network) and registers a cleanup that stops it and fails the
// test if tor or any child of it (obfs4proxy) survives.
func startJoined(t *testing.T, ctx context.Context, torrc []string, cfg Config) *joined {
	t.Helper()
	j, err := join(ctx, t.TempDir(), torrc, cfg)
	if err != nil {
		t.Fatalf("join the private network: %v", err)
	}
	t.Cleanup(func() { j.stopAndCheck(t) })
	return j
}

// join starts tor in dir/tor with torrc appended to cfg.ExtraTorrc and
// waits for bootstrap. The caller stops it (stopAndCheck).
func join(ctx context.Context, dir string, torrc []string, cfg Config) (*joined, error) {
	cfg.DataDir = filepath.Join(dir, "tor")
	cfg.ExtraTorrc = append(cfg.ExtraTorrc, torrc...)
	j := &joined{start: time.Now()}
	d, err := Start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	j.Daemon, j.bootstrap = d, time.Since(j.start)
	j.procs = processTree(d.Pid())
	return j, nil
}

// stopAndCheck stops tor (if it still runs) and fails t if one of the
// processes recorded at start, or a child started since, is still alive.
func (j *joined) stopAndCheck(t *testing.T) {
	t.Helper()
	procs := j.procs
	// Children started since (a pluggable transport restarted), unless
	// tor is gone and its PID may belong to someone else by now.
	if len(procs) > 0 && procs[0].alive() {
		procs = append(processTree(j.Pid()), procs...)
	}
	if err := j.Stop(context.Background()); err != nil {
		t.Errorf("stop tor: %v", err)
	}
	if alive := awaitGone(procs, 5*time.Second); len(alive) > 0 {
		t.Errorf("processes alive after Stop: %v", alive)
	}
}

// proc identifies a process across PID reuse: its start time (field 22 of
// /proc/<pid>/stat, in clock ticks since boot) is part of the identity.
type proc struct {
	pid   int
	start string
	comm  string
}

func (p proc) String() string { return fmt.Sprintf("%s[%d]", p.comm, p.pid) }

// statFields reads /proc/<pid>/stat and returns comm and the fields after
// it (state is [0], ppid [1], starttime [19]). comm is in parentheses and
// may contain spaces, hence the split at the last ')'.
func statFields(pid int) (comm string, rest []string, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", nil, false
	}
	open, close := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || close < open {
		return "", nil, false
	}
	rest = strings.Fields(string(b[close+1:]))
	if len(rest) < 20 {
		return "", nil, false
	}
	return string(b[open+1 : close]), rest, true
}

// alive reports whether p still exists as a running process. A zombie
// (state Z) has exited and only waits for its parent to reap it, so it
// counts as gone; so does a PID now used by another process.
func (p proc) alive() bool {
	_, rest, ok := statFields(p.pid)
	return ok && rest[0] != "Z" && rest[19] == p.start
}

// processTree returns pid and all its descendants, found by scanning
// /proc for parent links (no dependence on CONFIG_PROC_CHILDREN).
func processTree(pid int) []proc {
	if pid <= 0 {
		return nil
	}
	ents, _ := os.ReadDir("/proc")
	parent := map[int][]int{}
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, rest, ok := statFields(child); ok {
			pp, _ := strconv.Atoi(rest[1])
			parent[pp] = append(parent[pp], child)
		}
	}
	var out []proc
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if comm, rest, ok := statFields(p); ok && rest[0] != "Z" {
			out = append(out, proc{pid: p, start: rest[19], comm: comm})
		}
		queue = append(queue, parent[p]...)
	}
	return out
}

// awaitGone waits up to d for every process in ps to be gone and returns
// those still alive. Children of tor (obfs4proxy) exit on their own when
// tor closes their stdin, so they may need a moment after tor.
func awaitGone(ps []proc, d time.Duration) []proc {
	deadline := time.Now().Add(d)
	for {
		var alive []proc
		for _, p := range ps {
			if p.alive() {
				alive = append(alive, p)
			}
		}
		if len(alive) == 0 || time.Now().After(deadline) {
			return alive
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// serve listens on network/addr until the test ends and runs handle, in
// the accept loop, for every connection.
func serve(t *testing.T, network, addr string, handle func(net.Conn)) net.Listener {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			handle(c)
		}
	}()
	return ln
}

// echoListener is a local TCP echo server for onion services to forward
// to, closed at the end of the test.
func echoListener(t *testing.T) net.Listener {
	return serve(t, "tcp", "127.0.0.1:0", func(c net.Conn) {
		go func() {
			defer c.Close()
			io.Copy(c, c)
		}()
	})
}

// echo writes msg on c and reads it back.
func echo(c net.Conn, msg string) error {
	c.SetDeadline(time.Now().Add(20 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, msg); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if string(buf) != msg {
		return fmt.Errorf("echo returned %q, want %q", buf, msg)
	}
	return nil
}

// dialBudget bounds dialOnion's retries: a healthy private network
// reaches a fresh service in under 5 s, so a minute means it never will.
const dialBudget = 60 * time.Second

// dialOnion dials addr the way a peer does: while the error is transient
// (socks.Retryable) it waits and dials again. Right after a first upload
// the client may get F0 and then does not ask the HSDirs again for a
// while; newnym, if given, is called after F0 to purge that state
// (docs/spec-notes.md: "succeeds after NEWNYM + 1 s"). Non-transient errors, and
// the last error after dialBudget, are returned.
func dialOnion(t *testing.T, ctx context.Context, d *socks.Dialer, addr string, newnym func(context.Context) error) (net.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, dialBudget)
	defer cancel()
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil || !socks.Retryable(err) || ctx.Err() != nil {
			return c, err
		}
		t.Logf("dial %s: %v; retrying", addr, err)
		var re *socks.ReplyError
		if newnym != nil && errors.As(err, &re) && re.Code == socks.ReplyOnionDescNotFound {
			if nerr := newnym(ctx); nerr != nil {
				t.Logf("newnym: %v", nerr)
			}
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(min(socks.RetryAfter(err), time.Second)):
		}
	}
}

// wantReply checks that err matches kind and carries the SOCKS reply code.
func wantReply(t *testing.T, err, kind error, code byte) {
	t.Helper()
	var re *socks.ReplyError
	if !errors.Is(err, kind) || !errors.As(err, &re) || re.Code != code {
		t.Fatalf("err = %v; want %v with SOCKS reply 0x%02X", err, kind, code)
	}
}

// networkClient attaches to the private network's own client tor (not
// owned: Stop only disconnects), to publish on it or send it NEWNYM.
func networkClient(t *testing.T, ctx context.Context, nw *testnet.Network) *Daemon {
	t.Helper()
	d, err := Attach(ctx, AttachConfig{ControlAddr: nw.ControlAddr(), CookiePath: nw.CookiePath(), SocksAddr: nw.SocksAddr()})
	if err != nil {
		t.Fatalf("attach to the network's client: %v", err)
	}
	t.Cleanup(func() { d.Stop(context.Background()) })
	return d
}

// newnymOf returns a function that sends NEWNYM to d, for dialOnion. It
// signals directly instead of using NewCircuits, which would block for up
// to 10 s on tor's rate limit; tor itself defers a too-early NEWNYM.
func newnymOf(d *Daemon) func(context.Context) error {
	return func(ctx context.Context) error {
		return d.ControlConn().Signal(ctx, "NEWNYM")
	}
}
