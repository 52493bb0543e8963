package testnet

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/proxy"
)

// joiner is an extra tor that joined a network through ClientTorrc.
type joiner struct {
	socks string
	ctl   *ctlConn
	pid   int
}

// startJoiner runs a tor with the given network lines plus its own
// DataDirectory and auto ports, waits for it to bootstrap, and kills it in
// t.Cleanup.
func startJoiner(t *testing.T, ctx context.Context, netLines []string) *joiner {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o700)
	nd := &node{cfg: nodeConfig{nick: "joiner", dataDir: dir}}
	conf := append([]string{
		"DataDirectory " + dir,
		"SocksPort auto ExtendedErrors",
		"ControlPort auto",
		"ControlPortWriteToFile " + nd.controlFile(),
		"CookieAuthentication 1",
		"CookieAuthFile " + nd.cookiePath(),
		"Log notice stdout",
		"ShutdownWaitLength 0",
		fmt.Sprintf("__OwningControllerProcess %d", os.Getpid()),
	}, netLines...)
	if err := os.WriteFile(nd.torrcPath(), []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(nd.logPath())
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	tor, err := exec.LookPath("tor")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tor, "-f", nd.torrcPath(), "--defaults-torrc", os.DevNull)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	nd.cmd = cmd
	nd.done = make(chan struct{})
	go func() { nd.waitErr = cmd.Wait(); close(nd.done) }()
	t.Cleanup(nd.stop)

	cc, err := nd.attach(ctx, true)
	if err != nil {
		t.Fatalf("joiner control: %v\n%s", err, logTail(nd.logPath(), 30))
	}
	t.Cleanup(func() { cc.Close() })
	for {
		v, err := cc.getInfo(ctx, "status/bootstrap-phase")
		if err != nil {
			t.Fatalf("joiner bootstrap: %v\n%s", err, logTail(nd.logPath(), 30))
		}
		if p, _ := bootstrapProgress(v); p == 100 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	socks, err := cc.getInfo(ctx, "net/listeners/socks")
	if err != nil {
		t.Fatal(err)
	}
	return &joiner{socks: strings.Trim(socks, `"`), ctl: cc, pid: cmd.Process.Pid}
}

// echoServer accepts connections on loopback and echoes each line back.
func echoServer(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

// addOnion publishes a new ephemeral v3 service on virtual port 80 in
// front of 127.0.0.1:target and returns its address.
func addOnion(t testing.TB, ctx context.Context, cc *ctlConn, target int) string {
	t.Helper()
	lines, err := cc.do(ctx, fmt.Sprintf("ADD_ONION NEW:ED25519-V3 Flags=DiscardPK Port=80,127.0.0.1:%d", target))
	if err != nil {
		t.Fatalf("ADD_ONION: %v", err)
	}
	for _, l := range lines {
		if id, ok := strings.CutPrefix(l, "ServiceID="); ok {
			t.Cleanup(func() { cc.do(context.Background(), "DEL_ONION "+id) })
			return id + ".onion:80"
		}
	}
	t.Fatalf("ADD_ONION: no ServiceID in %q", lines)
	return ""
}

// echoThrough dials addr through the SOCKS port and checks one echoed line.
func echoThrough(ctx context.Context, socks, addr string) error {
	d, err := proxy.SOCKS5("tcp", socks, nil, &net.Dialer{})
	if err != nil {
		return err
	}
	c, err := d.(proxy.ContextDialer).DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	const msg = "hello through tor\n"
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if got != msg {
		return fmt.Errorf("echo: got %q, want %q", got, msg)
	}
	return nil
}

// awaitEcho retries echoThrough until it succeeds: right after ADD_ONION
// the descriptor is not yet uploaded, and a first fetch may miss (F0).
func awaitEcho(ctx context.Context, socks, addr string) error {
	var last error
	for {
		dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		last = echoThrough(dctx, socks, addr)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// assertGone fails unless every pid has exited (zombies count as gone).
func assertGone(t testing.TB, pids []int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for processAlive(pid) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if processAlive(pid) {
			t.Errorf("process %d still running", pid)
		}
	}
}

// logProgress returns an Options.Progress that logs to t.
func logProgress(t testing.TB) func(string) {
	start := time.Now()
	return func(s string) { t.Logf("%5.1fs %s", time.Since(start).Seconds(), s) }
}

// dumpLogs logs the tail of every node's log when t has failed.
func dumpLogs(t testing.TB, dir string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		logs, _ := filepath.Glob(filepath.Join(dir, "*", "tor.log"))
		for _, l := range logs {
			t.Logf("--- %s\n%s", l, logTail(l, 15))
		}
	})
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
