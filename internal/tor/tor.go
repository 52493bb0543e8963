// Package tor runs and controls the tor daemon mmogit uses: it starts its
// own tor (or attaches to a running one), waits for bootstrap through the
// control port, publishes the agent's onion service from its Ed25519 key
// and rotates circuits.
//
// The daemon is owned: the torrc names our pid as __OwningControllerProcess
// and the control connection sends TAKEOWNERSHIP, so tor exits when the
// agent does. The daemon listens on no TCP port at all: its SOCKS port
// and its control port are unix sockets only its user can use
// (socks.sock and control.sock in the 0700 data directory, or in a 0700
// directory of its own under TMPDIR when the data directory's path is too
// long for a unix socket), and Config.ExtraTorrc may not add a listener.
package tor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mmogit/mmogit/internal/torctl"
)

// BootstrapStatus is tor's bootstrap progress.
type BootstrapStatus = torctl.BootstrapStatus

// Defaults for Config's durations.
const (
	DefaultBootstrapTimeout = 3 * time.Minute
	DefaultStopGrace        = 5 * time.Second
)

// Config describes a tor to start.
type Config struct {
	// TorPath is the tor binary; "" looks up "tor" on PATH.
	TorPath string
	// DataDir is tor's DataDirectory (absolute; created 0700). The torrc,
	// control socket, cookie and tor.log live in it.
	DataDir string
	// SocksFlags are extra flags for the SocksPort line.
	SocksFlags string
	// ExtraTorrc lines are appended to the torrc, e.g. to join a private
	// test network ("TestingTorNetwork 1", "DirAuthority ...").
	ExtraTorrc []string
	// UseBridges with Bridges connects through bridges only: lines
	// "obfs4 IP:PORT FP cert=… iat-mode=0", "snowflake IP:PORT FP
	// fingerprint=FP url=… [fronts=…] [ice=…]", "meek_lite IP:PORT FP
	// url=https://… [front=…]", "webtunnel IP:PORT FP url=https://…" or
	// plain "IP:PORT [FP]" (see ParseBridge).
	UseBridges bool
	Bridges    []string
	// Obfs4Proxy is the obfs4 transport binary (a path or a name on
	// PATH); "" means lyrebird, else obfs4proxy, from PATH.
	Obfs4Proxy string
	// SnowflakeClient is the snowflake transport binary; "" means
	// snowflake-client from PATH.
	SnowflakeClient string
	// WebtunnelClient is the webtunnel transport binary; "" means
	// lyrebird, else webtunnel-client, from PATH. meek_lite bridges use
	// Obfs4Proxy.
	WebtunnelClient string
	// DisableNetwork starts tor with DisableNetwork 1 (nothing leaves the
	// machine); Start then does not wait for bootstrap.
	DisableNetwork bool
	// BootstrapTimeout is how long bootstrap may go without progress
	// before Start fails; 0 means DefaultBootstrapTimeout.
	BootstrapTimeout time.Duration
	// Progress, if set, is called with each bootstrap progress change.
	Progress func(BootstrapStatus)
	// StopGrace is how long Stop waits after SHUTDOWN before SIGKILL; 0
	// means DefaultStopGrace.
	StopGrace time.Duration

	// sockDir, set by Start, is where the unix sockets go when DataDir's
	// path is too long for them; "" means DataDir.
	sockDir string
}

// socketDir is the directory of tor's control and SOCKS sockets.
func (c Config) socketDir() string {
	if c.sockDir != "" {
		return c.sockDir
	}
	return c.DataDir
}

// Daemon is a tor process started by Start, or one found by Attach.
type Daemon struct {
	cfg     Config
	conn    *torctl.Conn
	version Version
	cmd     *exec.Cmd // nil when attached
	output  *tailBuffer
	done    chan struct{}

	// mu guards the fields below.
	mu        sync.Mutex
	socksAddr string
	exitErr   error

	// nymMu guards lastNewnym.
	nymMu      sync.Mutex
	lastNewnym time.Time
}

// ErrExited is matched by Err once the tor process has exited.
var ErrExited = errors.New("tor: tor process exited")

// Start starts tor, authenticates (SAFECOOKIE only), takes ownership, and unless
// cfg.DisableNetwork waits until tor has bootstrapped to 100 %.
func Start(ctx context.Context, cfg Config) (*Daemon, error) {
	bin, _, err := findTor(ctx, cfg.TorPath)
	if err != nil {
		return nil, err
	}
	if cfg.UseBridges {
		// Only the transports the bridges use need their binary.
		if err := cfg.resolveTransports(); err != nil {
			return nil, err
		}
	}
	if cfg.DataDir != "" {
		abs, err := filepath.Abs(cfg.DataDir)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadConfig, err)
		}
		cfg.DataDir = abs
	}
	if cfg.DataDir != "" && !socketsFit(cfg.DataDir) {
		// A unix socket path is limited to 108 bytes: put the sockets in
		// a private directory of our own (0700 from MkdirTemp), removed
		// when tor exits. buildTorrc refuses one that is still too long.
		dir, err := os.MkdirTemp("", "mmogit-tor-")
		if err != nil {
			return nil, fmt.Errorf("tor: socket directory: %w", err)
		}
		cfg.sockDir = dir
	}
	removeSockDir := func() {
		if cfg.sockDir != "" {
			os.RemoveAll(cfg.sockDir)
		}
	}
	lines, err := buildTorrc(cfg, os.Getpid())
	if err != nil {
		removeSockDir()
		return nil, err
	}
	if err := writePrivateDir(cfg.DataDir); err != nil {
		removeSockDir()
		return nil, err
	}
	torrc := filepath.Join(cfg.DataDir, "torrc")
	if err := writeFile0600(torrc, []byte(strings.Join(lines, "\n")+"\n")); err != nil {
		removeSockDir()
		return nil, err
	}
	// Stale files from a previous run would make us connect to nothing.
	os.Remove(filepath.Join(cfg.socketDir(), controlSocketName))
	os.Remove(filepath.Join(cfg.socketDir(), socksSocketName))
	os.Remove(filepath.Join(cfg.DataDir, "control.port")) // older versions' TCP control port

	d := &Daemon{cfg: cfg, output: &tailBuffer{max: 40}, done: make(chan struct{})}
	// --defaults-torrc /dev/null: the system's torrc-defaults must not
	// add ports or change behaviour behind our back.
	d.cmd = exec.Command(bin, "-f", torrc, "--defaults-torrc", os.DevNull)
	d.cmd.Stdout, d.cmd.Stderr = d.output, d.output
	if err := d.cmd.Start(); err != nil {
		removeSockDir()
		return nil, fmt.Errorf("tor: start %s: %w", bin, err)
	}
	go d.wait()

	if err := d.connect(ctx); err != nil {
		d.kill()
		return nil, err
	}
	if !cfg.DisableNetwork {
		if err := d.WaitBootstrap(ctx); err != nil {
			d.kill()
			return nil, err
		}
	}
	return d, nil
}

func writeFile0600(path string, b []byte) error {
	// Remove first: WriteFile keeps an existing file's mode.
	os.Remove(path)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("tor: write %s: %w", filepath.Base(path), err)
	}
	return nil
}

func (d *Daemon) wait() {
	err := d.cmd.Wait()
	d.mu.Lock()
	if err != nil {
		d.exitErr = fmt.Errorf("%w: %w", ErrExited, err)
	} else {
		d.exitErr = ErrExited
	}
	d.mu.Unlock()
	if d.cfg.sockDir != "" {
		os.RemoveAll(d.cfg.sockDir)
	}
	close(d.done)
}

// connect waits for the control socket, then authenticates
// and takes ownership.
func (d *Daemon) connect(ctx context.Context) error {
	sock, err := d.awaitControl(ctx)
	if err != nil {
		return err
	}
	c, err := torctl.Dial(ctx, "unix", sock)
	if err != nil {
		return fmt.Errorf("tor: %w", err)
	}
	cookie := filepath.Join(d.cfg.DataDir, "control_auth_cookie")
	// Our torrc has CookieAuthentication 1, so a real tor offers
	// SAFECOOKIE: anything less means something else answered.
	if err := c.Authenticate(ctx, torctl.AuthOptions{CookiePath: cookie, RequireSafeCookie: true}); err != nil {
		c.Close()
		return fmt.Errorf("tor: %w", err)
	}
	if err := c.TakeOwnership(ctx); err != nil {
		c.Close()
		return fmt.Errorf("tor: %w", err)
	}
	d.conn = c
	return d.loadInfo(ctx)
}

// loadInfo learns the version and SOCKS listener.
func (d *Daemon) loadInfo(ctx context.Context) error {
	if err := d.loadVersion(ctx); err != nil {
		return err
	}
	return d.refreshSocksAddr(ctx)
}

// loadVersion reads GETINFO version.
func (d *Daemon) loadVersion(ctx context.Context) error {
	m, err := d.conn.GetInfo(ctx, "version")
	if err != nil {
		return fmt.Errorf("tor: %w", err)
	}
	v, err := ParseVersion(m["version"])
	if err != nil {
		return err
	}
	d.version = v
	return nil
}

// refreshSocksAddr reads GETINFO net/listeners/socks, a space-separated
// list of quoted addresses. It is empty while DisableNetwork is set: tor
// then opens no listeners.
func (d *Daemon) refreshSocksAddr(ctx context.Context) error {
	m, err := d.conn.GetInfo(ctx, "net/listeners/socks")
	if err != nil {
		return fmt.Errorf("tor: %w", err)
	}
	l := strings.TrimSpace(m["net/listeners/socks"])
	addr := ""
	switch own := "unix:" + filepath.Join(d.cfg.socketDir(), socksSocketName); {
	case l == "":
	case strings.Contains(l, own):
		// Our own socket: its path may hold spaces, which the
		// space-separated list cannot tell from a separator.
		addr = own
	case strings.HasPrefix(l, `"`):
		if v, _, err := torctl.Unquote(l); err == nil {
			addr = v
		}
	default:
		addr = strings.Fields(l)[0]
	}
	d.mu.Lock()
	d.socksAddr = addr
	d.mu.Unlock()
	return nil
}

// awaitControl polls for the control socket until tor has created it, tor
// exits, or ctx ends.
func (d *Daemon) awaitControl(ctx context.Context) (string, error) {
	sock := filepath.Join(d.cfg.socketDir(), controlSocketName)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return sock, nil
		}
		select {
		case <-d.done:
			return "", fmt.Errorf("%w before opening its control port: %s", d.Err(), d.diagnostics())
		case <-ctx.Done():
			return "", fmt.Errorf("tor: waiting for the control port: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// diagnostics is tor's recent output and log, for error messages.
func (d *Daemon) diagnostics() string {
	out := strings.TrimSpace(d.output.String())
	if w := lastLogLine(filepath.Join(d.cfg.DataDir, "tor.log"), "[warn]", "[err]"); w != "" && !strings.Contains(out, w) {
		out += "\n" + w
	}
	return out
}

// kill ends the process at once and waits for it.
func (d *Daemon) kill() {
	if d.conn != nil {
		d.conn.Close()
	}
	if d.cmd != nil {
		d.cmd.Process.Kill()
		<-d.done
	}
}

// Stop shuts tor down: SIGNAL SHUTDOWN (immediate with ShutdownWaitLength
// 0), then SIGKILL if it has not exited after StopGrace or when ctx ends.
// For an attached tor it only closes the control connection, which removes
// the onion services this connection created.
func (d *Daemon) Stop(ctx context.Context) error {
	if d.cmd == nil {
		return d.conn.Close()
	}
	select {
	case <-d.done:
		d.conn.Close()
		return nil
	default:
	}
	sctx, cancel := context.WithTimeout(ctx, time.Second)
	d.conn.Signal(sctx, "SHUTDOWN") // tor may close the connection before replying
	cancel()
	d.conn.Close() // we own tor: closing the owning connection also ends it
	grace := d.cfg.StopGrace
	if grace <= 0 {
		grace = DefaultStopGrace
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-d.done:
		return nil
	case <-t.C:
	case <-ctx.Done():
	}
	d.cmd.Process.Kill()
	<-d.done
	return nil
}

// Done is closed when tor exits (or, for an attached tor, when the control
// connection is lost).
func (d *Daemon) Done() <-chan struct{} {
	if d.cmd == nil {
		return d.conn.Done()
	}
	return d.done
}

// Err reports why Done was closed (matching ErrExited for a started tor,
// torctl.ErrClosed for an attached one), or nil while tor runs.
func (d *Daemon) Err() error {
	if d.cmd == nil {
		return d.conn.Err()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.exitErr
}

// SocksAddr is tor's SOCKS listener: "unix:/path" for a tor Start
// started, whatever the attached tor reports (or AttachConfig.SocksAddr
// says) for an attached one, e.g. "127.0.0.1:9050"; "" while tor has no
// network. socks.Dialer takes either form as its ProxyAddr.
func (d *Daemon) SocksAddr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.socksAddr
}

// ControlConn is the authenticated control connection.
func (d *Daemon) ControlConn() *torctl.Conn { return d.conn }

// Version is tor's version.
func (d *Daemon) Version() Version { return d.version }

// DataDir is tor's data directory ("" for an attached tor).
func (d *Daemon) DataDir() string { return d.cfg.DataDir }

// Pid is the tor process id (0 for an attached tor).
func (d *Daemon) Pid() int {
	if d.cmd == nil {
		return 0
	}
	return d.cmd.Process.Pid
}
