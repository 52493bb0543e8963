// Package agent is the long-running mmogit process: it owns (or attaches
// to) tor, publishes the identity's onion service, runs the libp2p host with
// the transport policy, the DHT with signed advertisements and the memory
// sync service, and serves the local API. Wiring lives here and only here.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/mmogit/mmogit/internal/config"
	"github.com/mmogit/mmogit/internal/discovery"
	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/invite"
	"github.com/mmogit/mmogit/internal/localapi"
	"github.com/mmogit/mmogit/internal/memory"
	"github.com/mmogit/mmogit/internal/oniontransport"
	"github.com/mmogit/mmogit/internal/p2p"
	"github.com/mmogit/mmogit/internal/platform"
	"github.com/mmogit/mmogit/internal/socks"
	"github.com/mmogit/mmogit/internal/trust"
)

// SyncProtocol is the libp2p protocol ID of memory sync that every
// version answers; the version is agreed in the sync Hello.
const SyncProtocol = "/mmogit/sync/1.0.0"

// SyncProtocol3 is the ID a version 3 agent dials: it is opened without a
// negotiation round trip (p2p.Host.OpenStream), and an agent that does not
// know it gets SyncProtocol instead. Both run the same handler.
const SyncProtocol3 = "/mmogit/sync/3.0.0"

// Options configure an agent.
type Options struct {
	// ConfigDir holds the seed, tor.json, messages/, tor-data/, peers.json
	// and the API socket.
	ConfigDir string
	Config    config.Config
	Identity  *identity.Identity
	// TestnetTorrc, when set, makes the agent's tor join a private network
	// (the lines of testnet.Info.ClientTorrc).
	TestnetTorrc []string
	// Bootstrap are extra DHT bootstrap peers (onion addresses or multiaddrs).
	Bootstrap []string
	Logger    *slog.Logger
}

// Agent is a running agent. Create with New, then Run.
type Agent struct {
	opts  Options
	id    *identity.Identity
	log   *slog.Logger
	store *memory.Store
	peers *peerBook
	trust *trust.Book  // who may read and write (trust.json, re-read when it changes)
	quota *trust.Quota // what each writing peer may still store today
	lock  *lockFile
	start time.Time

	tor  *torSupervisor // nil without tor (see needsTor); set by New, never changed
	host *p2p.Host
	disc *discovery.Discovery

	// onionLn receives the connections tor forwards to our onion service;
	// onionTarget is where ADD_ONION points tor: "unix:<config>/onion.sock"
	// with the agent's own tor, "127.0.0.1:<port>" with an attached one.
	onionLn     net.Listener
	onionTarget string

	stop     context.CancelFunc
	stopOnce sync.Once

	// ready is closed once host and disc are set; API handlers that need
	// them wait for it (the API serves status while tor bootstraps).
	ready chan struct{}

	// syncIdle overrides the sync protocol's idle timeout for inbound and
	// outbound sessions (zero: syncproto.DefaultIdle). Tests shorten it to
	// watch a stalled peer get cut off; it must be set before Run.
	syncIdle time.Duration

	// dialTimeout is the host's limit for one dial (p2p.Config.DialTimeout;
	// zero: p2p.DefaultDialTimeout); the SOCKS dial gets less, see
	// socksDialTimeout. retryWait, if set, rescales connectRetry's waits.
	// Tests shorten both; they must be set before Run.
	dialTimeout time.Duration
	retryWait   func(time.Duration) time.Duration

	mu        sync.Mutex // mu guards the fields below
	lastErr   string
	advertCtx context.CancelFunc
}

// New checks the config dir, takes the agent lock and opens the store.
// Nothing networked starts before Run.
func New(opts Options) (*Agent, error) {
	if opts.Identity == nil {
		return nil, errors.New("agent: no identity")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := checkDirPerms(opts.ConfigDir); err != nil {
		return nil, err
	}
	lock, err := acquireLock(opts.ConfigDir)
	if err != nil {
		return nil, err
	}
	st, err := memory.Open(filepath.Join(opts.ConfigDir, "messages"))
	if err != nil {
		lock.release()
		return nil, err
	}
	pb, err := loadPeerBook(opts.ConfigDir)
	if err != nil {
		lock.release()
		return nil, err
	}
	tb, err := trust.NewBook(opts.ConfigDir)
	if err != nil {
		lock.release()
		return nil, err
	}
	a := &Agent{
		opts: opts, id: opts.Identity, log: opts.Logger, store: st, peers: pb, lock: lock,
		trust: tb, quota: trust.NewQuota(opts.Config.Sync.QuotaMessages, opts.Config.Sync.QuotaBytes),
		start: time.Now(), ready: make(chan struct{}),
	}
	if a.needsTor() {
		// Set here, before Run serves the API: Status and Rotate read it
		// from API goroutines without a lock.
		a.tor = newTorSupervisor(a)
	}
	return a, nil
}

// checkDirPerms refuses a config dir others can write into or read: it
// holds the seed and the API socket.
func checkDirPerms(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("agent: config dir: %w", err)
	}
	if platform.OthersAccess(fi) != 0 { // Windows: ACLs, not mode bits
		return fmt.Errorf("agent: config dir %s has mode %04o; it holds your seed and the agent socket: run `chmod 700 %s`", dir, fi.Mode().Perm(), dir)
	}
	// tor.json names the tor binary the agent executes: a config others can
	// write is a way to run code as this user.
	p := filepath.Join(dir, config.FileName)
	if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("agent: %s has mode %04o: others can change which tor binary runs; run `chmod 600 %s`", p, fi.Mode().Perm(), p)
	}
	return nil
}

func (a *Agent) mode() config.Transport { return a.opts.Config.Transport }

// Run starts everything and serves until ctx ends or Shutdown is called.
func (a *Agent) Run(ctx context.Context) error {
	defer a.lock.release()
	ctx, cancel := context.WithCancel(ctx)
	a.stop = cancel
	defer cancel()

	api := localapi.NewServer(a, a.log)
	if err := api.Listen(a.opts.ConfigDir); err != nil {
		return err
	}
	apiDone := make(chan error, 1)
	go func() { apiDone <- api.Serve(ctx) }()

	err := a.run(ctx)
	cancel()
	<-apiDone
	a.shutdown()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func (a *Agent) run(ctx context.Context) error {
	var onionCfg *p2p.OnionListener
	if a.needsTor() {
		ln, target, err := a.listenOnion()
		if err != nil {
			return err
		}
		a.onionLn, a.onionTarget = ln, target
		onionCfg = &p2p.OnionListener{Listener: ln, Address: a.id.OnionAddress(), Port: a.opts.Config.Tor.OnionPort}
		if err := a.tor.start(ctx); err != nil {
			return err
		}
	}
	h, err := p2p.New(ctx, a.hostConfig(onionCfg))
	if err != nil {
		return err
	}
	a.host = h
	h.Host().SetStreamHandler(SyncProtocol, a.handleSync)
	h.Host().SetStreamHandler(SyncProtocol3, a.handleSync)
	h.Host().SetStreamHandler(invite.Protocol, a.handleInvite)
	h.Host().Network().Notify(a.peers.notifiee())

	bootstrap, err := a.bootstrapPeers()
	if err != nil {
		return err
	}
	dhtLim := a.opts.Config.DHT
	d, err := discovery.New(h.Host(), a.id, discovery.Options{
		Bootstrap: bootstrap,
		TTL:       a.opts.Config.AdvertisementTTL.D(),
		Logger:    a.log,
		StoreLimits: discovery.StoreLimits{
			MaxRecords:          dhtLim.MaxRecords,
			MaxProviders:        dhtLim.MaxProviders,
			MaxProvidersPerPeer: dhtLim.MaxProvidersPerPeer,
		},
	})
	if err != nil {
		return err
	}
	a.disc = d
	if services := a.startupServices(true); len(services) > 0 {
		// Published by keepAdvertising's loop once the DHT has peers. With
		// none configured nothing is advertised until `tor advertise`.
		if err := d.SetAdvertised(services, a.directAddrs()); err != nil {
			return fmt.Errorf("agent: services: %w", err)
		}
	}
	close(a.ready)
	go a.bootstrapLoop(ctx, bootstrap)
	go a.keepAdvertising(ctx)
	if a.tor != nil {
		go a.tor.supervise(ctx)
	}
	a.log.Info("agent running", "peer", a.id.PeerID(), "onion", a.id.OnionAddress(), "transport", a.mode())
	<-ctx.Done()
	a.peers.flush()
	return ctx.Err()
}

// needsTor reports whether the agent runs tor (and the onion transport and
// service): in tor and hybrid mode, and in direct mode as soon as one
// peer_transport override asks for tor or hybrid; such a peer is only
// reachable over an onion service.
func (a *Agent) needsTor() bool {
	if a.mode() != config.Direct {
		return true
	}
	for _, t := range a.opts.Config.PeerTransport {
		if t != config.Direct {
			return true
		}
	}
	return false
}

// onionSocketName is the unix socket in the config dir that the agent's own
// tor forwards onion-service connections to.
const onionSocketName = "onion.sock"

// listenOnion opens the local listener behind the onion service. With the
// agent's own tor (same user) it is a 0600 unix socket in the 0700 config
// dir (ADD_ONION Port=N,unix:/path), so nothing listens on TCP for it and no
// other local user can reach libp2p through it and pass as an onion peer.
// An attached system tor usually runs as another user and cannot open a
// socket in the config dir, so it gets a TCP listener on 127.0.0.1.
func (a *Agent) listenOnion() (net.Listener, string, error) {
	if a.opts.Config.Tor.Attach != nil {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, "", fmt.Errorf("agent: onion listener: %w", err)
		}
		return ln, ln.Addr().String(), nil
	}
	p := filepath.Join(a.opts.ConfigDir, onionSocketName)
	var tmpDir string
	if !usableSocketPath(p) {
		// ADD_ONION's Port= cannot carry a space or comma, and a unix
		// socket path is limited to 108 bytes: use a private directory
		// of our own instead (0700 from MkdirTemp, removed on Close).
		d, err := os.MkdirTemp("", "mmogit-onion-")
		if err != nil {
			return nil, "", fmt.Errorf("agent: onion listener: %w", err)
		}
		tmpDir, p = d, filepath.Join(d, onionSocketName)
		if !usableSocketPath(p) {
			os.RemoveAll(d)
			return nil, "", fmt.Errorf("agent: onion listener: neither %s nor %s can be an onion service target (no spaces or commas, at most %d bytes); set TMPDIR to a short plain path", a.opts.ConfigDir, d, maxSocketPath)
		}
	}
	// We hold the agent lock: a socket left here is a dead agent's.
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, "", fmt.Errorf("agent: onion listener: remove stale socket: %w", err)
	}
	ln, err := net.Listen("unix", p)
	if err == nil {
		err = os.Chmod(p, 0o600)
		if err != nil {
			ln.Close()
		}
	}
	if err != nil {
		if tmpDir != "" {
			os.RemoveAll(tmpDir)
		}
		return nil, "", fmt.Errorf("agent: onion listener: %w", err)
	}
	if tmpDir != "" {
		ln = &dirListener{Listener: ln, dir: tmpDir}
	}
	return ln, "unix:" + p, nil
}

// maxSocketPath is what fits sun_path (108 bytes with its NUL) with room
// to spare.
const maxSocketPath = 100

// usableSocketPath reports whether p can be an ADD_ONION unix target.
func usableSocketPath(p string) bool {
	return len(p) <= maxSocketPath && !strings.ContainsAny(p, " ,\"\\\t\r\n")
}

// dirListener removes its private directory when closed.
type dirListener struct {
	net.Listener
	dir string
}

func (l *dirListener) Close() error {
	err := l.Listener.Close()
	os.RemoveAll(l.dir)
	return err
}

func (a *Agent) hostConfig(onionCfg *p2p.OnionListener) p2p.Config {
	c := a.opts.Config
	pc := p2p.Config{
		Identity:      a.id,
		Mode:          p2p.Mode(c.Transport),
		Onion:         onionCfg,
		HybridTimeout: c.HybridTimeout.D(),
		DialTimeout:   a.hostDialTimeout(),
		Logger:        a.log,
	}
	if c.Transport != config.Tor {
		pc.ListenTCP = c.Listen
	}
	if a.tor != nil {
		pc.OnionDialer = a.onionDialer
	}
	for k, t := range c.PeerTransport {
		id, err := resolvePeerKey(k)
		if err != nil {
			a.log.Warn("ignoring peer_transport entry", "peer", k, "err", err)
			continue
		}
		if pc.PeerModes == nil {
			pc.PeerModes = map[peer.ID]p2p.Mode{}
		}
		pc.PeerModes[id] = p2p.Mode(t)
	}
	return pc
}

// onionDialer gives every peer its own SOCKS credentials (tor stream
// isolation) and always uses the current tor's SOCKS port, which changes
// when tor is restarted.
func (a *Agent) onionDialer(p peer.ID) oniontransport.ContextDialer {
	d := &socks.Dialer{ProxyAddr: a.tor.socksAddr(), Timeout: socksDialTimeout(a.hostDialTimeout())}
	return d.ForPeer(p.String())
}

func (a *Agent) hostDialTimeout() time.Duration {
	if a.dialTimeout > 0 {
		return a.dialTimeout
	}
	return a.timeouts().Dial.D()
}

// timeouts is tor.json's timeouts section, a field left zero (a Config
// built in code) taking its default.
func (a *Agent) timeouts() config.TimeoutSettings {
	t, d := a.opts.Config.Timeouts, config.DefaultTimeouts()
	for _, f := range []struct{ v, def *config.Duration }{{&t.Dial, &d.Dial}, {&t.Connect, &d.Connect}, {&t.SyncIdle, &d.SyncIdle}, {&t.Sync, &d.Sync}} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	return t
}

// socksDialTimeout bounds one SOCKS dial. It ends before the host's limit
// for the whole dial, so that a peer that never answers yields socks'
// typed error (onion_unreachable, worth a retry) instead of the host's
// bare "context deadline exceeded".
func socksDialTimeout(host time.Duration) time.Duration { return host * 5 / 6 }

func (a *Agent) setErr(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err == nil {
		a.lastErr = ""
		return
	}
	a.lastErr = err.Error()
}

// errStarting is returned by API calls made before the host is up.
var errStarting = &kindError{kind: "starting", err: errors.New("agent: still starting (tor bootstrap or onion publication in progress); see `mmogit tor status`")}

// started reports whether host and disc are set (and makes them safe to
// read: the close of ready happens after they are written).
func (a *Agent) started() bool {
	select {
	case <-a.ready:
		return true
	default:
		return false
	}
}

// shutdown runs on Run's goroutine after run returned, so it may read
// host and disc whether or not run got as far as closing ready.
func (a *Agent) shutdown() {
	if a.disc != nil {
		a.disc.Close()
	}
	if a.host != nil {
		a.host.Close()
	}
	if a.tor != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		a.tor.stop(ctx)
		cancel()
	}
	if a.onionLn != nil {
		a.onionLn.Close()
	}
}

// Shutdown implements localapi.Backend.
func (a *Agent) Shutdown() {
	a.stopOnce.Do(func() {
		if a.stop != nil {
			// Reply to the API call first, then stop.
			go func() { time.Sleep(50 * time.Millisecond); a.stop() }()
		}
	})
}
