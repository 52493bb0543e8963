package agent

import (
	"context"
	"crypto/ecdh"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mmogit/mmogit/internal/onion"
	"github.com/mmogit/mmogit/internal/tor"
	"github.com/mmogit/mmogit/internal/torctl"
)

// torSupervisor starts (or attaches to) tor, publishes the onion service,
// and when tor dies, restarts it and republishes.
type torSupervisor struct {
	a *Agent

	mu          sync.Mutex // mu guards the fields below
	d           *tor.Daemon
	svc         *tor.Service
	boot        torctl.BootstrapStatus
	published   bool
	publishedAt time.Time
	restarts    int
}

func newTorSupervisor(a *Agent) *torSupervisor { return &torSupervisor{a: a} }

func (t *torSupervisor) socksAddr() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.d == nil {
		return ""
	}
	return t.d.SocksAddr()
}

func (t *torSupervisor) progress(st torctl.BootstrapStatus) {
	if uselessWarning(st.Warning, st.Reason) {
		st.Warning, st.Reason = "", ""
	}
	t.mu.Lock()
	t.boot = st
	t.mu.Unlock()
	t.a.log.Info("tor bootstrap", "progress", st.Progress, "summary", st.Summary)
}

// launch starts or attaches to tor and waits for bootstrap. When
// bootstrap stalls and tor's events said nothing useful (often "DONE
// (DONE)": a relay connection that closed normally), the error carries the
// last warning of tor's log instead (own tor), or no warning (attached).
func (t *torSupervisor) launch(ctx context.Context) (*tor.Daemon, error) {
	d, logPath, err := t.launchTor(ctx)
	var be *tor.BootstrapError
	if errors.As(err, &be) && uselessWarning(be.Warning, "") {
		be.Warning = ""
		if logPath != "" {
			be.Warning = lastTorWarning(logPath)
		}
	}
	if c := t.a.opts.Config.Tor; be != nil && c.Attach == nil && c.UseBridges && be.Last.Progress < bridgeHandshakeDone {
		// A wrong obfs4 cert= or an unreachable bridge leaves tor at
		// "Connected to pluggable transport" without a word in its log.
		err = fmt.Errorf("%w (no handshake with any bridge completed: check each line of tor.bridges, its cert= for obfs4, and that the bridge is reachable)", err)
	}
	return d, err
}

// bridgeHandshakeDone is tor's bootstrap progress once it has finished a
// handshake with a relay or bridge (handshake_done).
const bridgeHandshakeDone = 15

func (t *torSupervisor) launchTor(ctx context.Context) (*tor.Daemon, string, error) {
	c := t.a.opts.Config.Tor
	if c.Attach != nil {
		d, err := tor.Attach(ctx, tor.AttachConfig{
			ControlAddr: c.Attach.Control, SocksAddr: c.Attach.Socks,
			CookiePath: c.Attach.CookiePath, Password: c.Attach.Password,
			Progress: t.progress, BootstrapTimeout: c.BootstrapTimeout.D(),
		})
		return d, "", err
	}
	dataDir := filepath.Join(t.a.opts.ConfigDir, "tor-data")
	// PidFile lets tools (and tests) find the agent's own tor.
	extra := []string{"PidFile " + filepath.Join(dataDir, "tor.pid")}
	extra = append(extra, t.a.opts.TestnetTorrc...)
	extra = append(extra, c.ExtraTorrc...)
	d, err := tor.Start(ctx, tor.Config{
		TorPath:          c.Binary,
		DataDir:          dataDir,
		ExtraTorrc:       extra,
		UseBridges:       c.UseBridges,
		Bridges:          c.Bridges,
		Obfs4Proxy:       c.Obfs4Proxy,
		SnowflakeClient:  c.SnowflakeClient,
		WebtunnelClient:  c.WebtunnelClient,
		BootstrapTimeout: c.BootstrapTimeout.D(),
		Progress:         t.progress,
	})
	return d, filepath.Join(dataDir, "tor.log"), err
}

// uselessWarning reports whether a bootstrap warning from tor's events
// explains nothing: none, or the "DONE" reason of a connection that was
// closed normally.
func uselessWarning(warning, reason string) bool {
	w := strings.TrimSpace(warning)
	return w == "" || strings.EqualFold(reason, "DONE") || strings.HasPrefix(strings.ToUpper(w), "DONE")
}

// lastTorWarning is the last [warn] or [err] line of tor's log, "" if none.
func lastTorWarning(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(string(b), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], "running Tor as root") { // logged at every start as root; explains nothing
			continue
		}
		if strings.Contains(lines[i], "[warn]") || strings.Contains(lines[i], "[err]") {
			return strings.TrimSpace(lines[i])
		}
	}
	return ""
}

// start brings tor up and publishes the onion service; it returns once
// the service is published.
func (t *torSupervisor) start(ctx context.Context) error {
	d, err := t.launch(ctx)
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.d = d
	t.mu.Unlock()
	err = t.addClientAuth(ctx, d)
	if err == nil {
		err = t.publish(ctx)
	}
	if err != nil {
		// A tor we could not publish on must not keep running: the next
		// try starts another tor in the same data dir, which finds it
		// locked (after removing the running tor's control socket), and
		// so on forever. (An attached tor is only disconnected.)
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		d.Stop(sctx)
		cancel()
		return err
	}
	return nil
}

// addClientAuth gives tor this agent's keys for restricted peers
// (tor.client_auth). They live only in tor's memory, so every start, every
// restart of a tor that died and every NEWNYM (which purges them) gives
// them again. (Config refuses client_auth with an attached tor, whose
// reloads would drop them behind the agent's back.)
func (t *torSupervisor) addClientAuth(ctx context.Context, d *tor.Daemon) error {
	for addr, key := range t.a.opts.Config.Tor.ClientAuth {
		k, err := onion.ParseClientPrivateKey(key)
		if err != nil { // Validate already refused it; this is a second guard
			return fmt.Errorf("agent: client_auth[%s]: %w", addr, err)
		}
		if err := d.ControlConn().OnionClientAuthAdd(ctx, onion.Normalize(addr), onion.EncodeClientPrivateKey(k)); err != nil {
			return fmt.Errorf("agent: client authorization for %s: %w", addr, err)
		}
	}
	return nil
}

func (t *torSupervisor) publish(ctx context.Context) error {
	t.mu.Lock()
	d := t.d
	t.published = false
	t.mu.Unlock()
	c := t.a.opts.Config.Tor
	var clients []*ecdh.PublicKey
	for i, s := range c.AuthorizedClients {
		k, err := onion.ParseClientPublicKey(s)
		if err != nil {
			return fmt.Errorf("agent: authorized_clients[%d]: %w", i, err)
		}
		clients = append(clients, k)
	}
	svc, err := d.Publish(ctx, tor.ServiceConfig{
		Key:         t.a.id.Private,
		VirtualPort: c.OnionPort,
		Target:      t.a.onionTarget,
		PoW:         c.PoW,
		MaxStreams:  c.MaxStreams,
		ClientAuth:  clients,
	})
	if err != nil {
		return fmt.Errorf("agent: publish onion service: %w", err)
	}
	t.mu.Lock()
	t.svc = svc
	t.mu.Unlock()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := svc.WaitPublished(wctx); err != nil {
		return fmt.Errorf("agent: onion service not published: %w", err)
	}
	t.mu.Lock()
	t.published, t.publishedAt = true, time.Now()
	t.mu.Unlock()
	t.a.log.Info("onion service published", "address", t.a.id.OnionAddress())
	return nil
}

// supervise restarts tor when it exits, with backoff, until ctx ends.
func (t *torSupervisor) supervise(ctx context.Context) {
	backoff := time.Second
	for {
		t.mu.Lock()
		d := t.d
		t.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-d.Done():
		}
		t.mu.Lock()
		t.published = false
		t.boot = torctl.BootstrapStatus{}
		t.mu.Unlock()
		t.a.log.Warn("tor exited; restarting", "err", d.Err())
		t.a.setErr(fmt.Errorf("tor exited (%v); restarting", d.Err()))
		for ctx.Err() == nil {
			err := t.start(ctx)
			if err == nil {
				t.mu.Lock()
				t.restarts++
				t.mu.Unlock()
				t.a.setErr(nil)
				backoff = time.Second
				// Connections through the old tor are dead; drop them so
				// the next dial builds fresh circuits.
				t.a.dropOnionConns()
				break
			}
			t.a.log.Warn("tor restart failed", "err", err, "retry_in", backoff)
			t.a.setErr(err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
		}
	}
}

func (t *torSupervisor) stop(ctx context.Context) {
	t.mu.Lock()
	d := t.d
	t.mu.Unlock()
	if d != nil {
		d.Stop(ctx)
	}
}

// torStatus is a snapshot for the API.
type torStatus struct {
	boot        torctl.BootstrapStatus
	published   bool
	publishedAt time.Time
	restarts    int
	version     string
	pow         bool
}

func (t *torSupervisor) status() torStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := torStatus{boot: t.boot, published: t.published, publishedAt: t.publishedAt, restarts: t.restarts}
	if t.d != nil {
		s.version = t.d.Version().String()
	}
	if t.svc != nil {
		s.pow = t.svc.PoWEnabled
	}
	return s
}

// rotate asks the current tor for new circuits.
func (t *torSupervisor) rotate(ctx context.Context) (time.Duration, error) {
	t.mu.Lock()
	d := t.d
	t.mu.Unlock()
	if d == nil {
		return 0, fmt.Errorf("agent: tor is not running")
	}
	deferred, err := d.NewCircuits(ctx)
	if err != nil {
		return deferred, err
	}
	// NEWNYM purges tor's client state, the client authorization keys
	// given over the control port included.
	return deferred, t.addClientAuth(ctx, d)
}
