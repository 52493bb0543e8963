package testnet

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mmogit/mmogit/internal/platform"
)

// ExitError reports a tor process that exited while the network was being
// started; Log holds the tail of its log, which says why.
type ExitError struct {
	Node string // nickname, e.g. "auth0", "client"
	Err  error  // from exec.Cmd.Wait
	Log  string
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("testnet: tor %s exited early (%v); log tail:\n%s", e.Node, e.Err, e.Log)
}

func (e *ExitError) Unwrap() error { return e.Err }

// addrInUse reports whether the process failed because a port we picked
// was taken in between; Start then retries with other ports.
func (e *ExitError) addrInUse() bool {
	return strings.Contains(e.Log, "Address already in use")
}

// node is one tor process.
type node struct {
	cfg     nodeConfig
	keys    nodeKeys
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has been waited for
	waitErr error         // valid after done is closed
	owner   *ctlConn      // TAKEOWNERSHIP connection; nil when detached
}

func (n *node) nick() string        { return n.cfg.nick }
func (n *node) logPath() string     { return filepath.Join(n.cfg.dataDir, "tor.log") }
func (n *node) torrcPath() string   { return filepath.Join(n.cfg.dataDir, "torrc") }
func (n *node) cookiePath() string  { return filepath.Join(n.cfg.dataDir, "control_auth_cookie") }
func (n *node) controlFile() string { return filepath.Join(n.cfg.dataDir, "control-port") }
func (n *node) pid() int            { return n.cmd.Process.Pid }
func (n *node) exitError() *ExitError {
	return &ExitError{Node: n.nick(), Err: n.waitErr, Log: logTail(n.logPath(), 25)}
}

// start writes the torrc and launches tor. Its log goes to a file rather
// than a pipe so that a detached tor outlives us without a SIGPIPE. When
// the process ends, n is sent on exited (which must have room for it).
func (n *node) start(torPath string, detached bool, exited chan<- *node) error {
	conf := strings.Join(n.cfg.torrc(), "\n") + "\n"
	if err := os.WriteFile(n.torrcPath(), []byte(conf), 0o600); err != nil {
		return fmt.Errorf("testnet: %s: %w", n.nick(), err)
	}
	logf, err := os.OpenFile(n.logPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("testnet: %s: %w", n.nick(), err)
	}
	defer logf.Close()
	// --defaults-torrc /dev/null keeps a system torrc-defaults out.
	cmd := exec.Command(torPath, "-f", n.torrcPath(), "--defaults-torrc", os.DevNull)
	cmd.Stdout, cmd.Stderr = logf, logf
	// A detached tor gets its own session so that a terminal's ^C or
	// hang-up does not reach it.
	if detached {
		platform.Detach(cmd)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("testnet: start %s: %w", n.nick(), err)
	}
	n.cmd = cmd
	n.done = make(chan struct{})
	go func() {
		n.waitErr = cmd.Wait()
		close(n.done)
		exited <- n
	}()
	return nil
}

// attach waits for the node's control port, connects, and (unless
// detached) sends TAKEOWNERSHIP so that tor exits the moment this process
// dies, not only when __OwningControllerProcess is next polled.
func (n *node) attach(ctx context.Context, own bool) (*ctlConn, error) {
	var addr string
	for {
		var err error
		if addr, err = readControlPortFile(n.controlFile()); err == nil {
			if _, err = os.Stat(n.cookiePath()); err == nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-n.done:
			return nil, n.exitError()
		case <-time.After(50 * time.Millisecond):
		}
	}
	cc, err := dialControl(ctx, addr, n.cookiePath())
	if err != nil {
		return nil, fmt.Errorf("testnet: %s: %w", n.nick(), err)
	}
	if own {
		if _, err := cc.do(ctx, "TAKEOWNERSHIP"); err != nil {
			cc.Close()
			return nil, fmt.Errorf("testnet: %s: takeownership: %w", n.nick(), err)
		}
		n.owner = cc
	}
	return cc, nil
}

// stop ends the process and waits for it: closing the owning control
// connection or SIGTERM makes tor exit at once (ShutdownWaitLength 0);
// SIGKILL follows if it does not.
func (n *node) stop() {
	if n.cmd == nil {
		return
	}
	if n.owner != nil {
		n.owner.Close()
	}
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		n.cmd.Process.Kill() // Windows has no SIGTERM for another process
	}
	select {
	case <-n.done:
		return
	case <-time.After(5 * time.Second):
	}
	n.cmd.Process.Kill()
	<-n.done
}

// logTail returns the last lines of a log file.
func logTail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	ls := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return string(bytes.Join(ls, []byte("\n")))
}

// freePorts returns n distinct free loopback TCP ports. Holding all the
// listeners until the end keeps the kernel from handing out one port
// twice; somebody else can still take a port before tor binds it, which
// Start handles by retrying.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("testnet: free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	if !platform.Alive(pid) {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true // no procfs: trust platform.Alive
	}
	// "pid (comm) S ..." — comm may contain spaces, the state follows the
	// last ')'.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}

// processUsesDir reports whether pid's command line mentions dir, which is
// how Stop makes sure a recorded PID still belongs to the network and was
// not reused by an unrelated process.
func processUsesDir(pid int, dir string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	return bytes.Contains(b, []byte(dir+string(filepath.Separator)))
}

// NodeProcess reports whether pid is a live tor process of the network in
// dir (a recorded PID reused by an unrelated process does not count) and
// names its node, from its `tor -f DIR/NODE/torrc` command line.
func NodeProcess(pid int, dir string) (node string, ok bool) {
	if pid <= 0 || !processAlive(pid) || !processUsesDir(pid, dir) {
		return "", false
	}
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	for i, a := range args {
		if i > 0 && args[i-1] == "-f" && strings.HasPrefix(a, dir+string(filepath.Separator)) {
			node = filepath.Base(filepath.Dir(a))
		}
		if i > 0 && args[i-1] == "--config" && a == filepath.Join(dir, shapeFileName) {
			node = "shaper" // `mmogit testnet shape --config DIR/shaper.json`
		}
	}
	return node, true
}
