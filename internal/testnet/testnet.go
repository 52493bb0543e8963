// Package testnet runs a private Tor network on loopback: three directory
// authorities that are also relays, one or more extra relays, optionally an
// obfs4 bridge, and a client, all with TestingTorNetwork 1 and nothing that
// reaches the public Tor network.
//
// Start returns once the network's client has bootstrapped to 100 %: about
// 7 s after the call with cached keys, and an onion service on the client is
// reachable ~2 s later (measured with tor 0.4.9.11 on 2 cores; see
// BenchmarkStart). The recipe (docs/private-network.md) rests on a
// few timing details: the authorities' first consensus is scheduled 5–6 s
// after launch so the relays' descriptors are in it, the client starts just
// before that consensus is published so it does not enter tor's download
// back-off, and clients do not use entry guards. Keys are generated with
// tor-gencert and `tor --list-fingerprint` once and cached (KeyCache).
//
// Tests share one network per test binary through Shared:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		testnet.CloseShared() // optional: the tors also die with the binary
//		os.Exit(code)
//	}
//
//	func TestX(t *testing.T) {
//		n := testnet.Shared(t)
//		// join with n.ClientTorrc(), or dial through n.SocksAddr()
//	}
//
// `mmogit testnet up` uses Start with Detached, and `mmogit testnet down`
// uses Stop on the directory's testnet.json.
//
// Options.Profile (or $MMOGIT_TESTNET_PROFILE for Shared) shapes the
// links: under ProfilePublic and ProfileSlow every relay's and authority's
// ORPort is reached through a netshape.Shaper that adds public-network
// latency and a bandwidth cap; see Profile.
package testnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mmogit/mmogit/internal/netshape"
	"github.com/mmogit/mmogit/internal/platform"
)

// DefaultRelays is the number of extra relays when Options.Relays is 0.
// A service's rendezvous circuit has 4 hops, all distinct, so with the 3
// authorities and 1 relay every relay is on it and any path constraint
// (the client's choice of rendezvous point, the vanguard layer) can leave
// no candidate: tor then logs "No available nodes when trying to choose
// node" and gives up on the rendezvous, and the client waits on it until
// its own timeout. 6 relays leave slack for every hop.
const DefaultRelays = 3

// Options configure Start.
type Options struct {
	// Dir is where everything lives (created 0700): one DataDirectory per
	// node, their torrc and logs, and testnet.json. Required.
	Dir string
	// Relays is the number of extra non-authority relays. 0 means
	// DefaultRelays.
	Relays int
	// Bridge also runs an obfs4 bridge (BridgeRelay 1, obfs4proxy) inside
	// the network; see Network.BridgeLine.
	Bridge bool
	// Detached makes the processes independent of this one (for `mmogit
	// testnet up`); stop them with Stop or Close. By default they take
	// this process as owner and exit when it does.
	Detached bool
	// KeyCache is where generated keys are kept between runs; empty means
	// os.UserCacheDir()/mmogit-testnet-keys.
	KeyCache string
	// Logger, if set, receives debug records of the start-up.
	Logger *slog.Logger
	// Progress, if set, receives short human-readable progress lines.
	Progress func(string)
	// Profile picks the link conditions (see Profile); "" is
	// ProfileLoopback.
	Profile Profile
	// Shaped puts shapers in front of the ORPorts even under
	// ProfileLoopback (zero latency, no cap), so that tests can inject
	// faults through Network.Shaper.
	Shaped bool
	// ShaperCommand runs the shapers of a Detached shaped network as
	// their own process: Start appends "--config DIR/shaper.json" and
	// the command must serve it with RunShaper (`mmogit testnet shape`).
	// Without Detached the shapers run inside this process.
	ShaperCommand []string

	// extraTorrc adds lines to the torrc of the named node; tests use it
	// to make a node fail.
	extraTorrc map[string][]string
}

func (o Options) shaped() bool { return o.Shaped || o.Profile.Shaped() }

// ErrMissingTool is returned when tor, tor-gencert or obfs4proxy is not
// installed.
var ErrMissingTool = errors.New("testnet: required program not found")

// ErrAlreadyRunning is returned by Start when Dir holds a network whose
// processes are still running; stop it first with Stop.
var ErrAlreadyRunning = errors.New("testnet: a network is already running in this directory")

// Info describes a running network; Start writes it to Dir/testnet.json.
type Info struct {
	Dir               string   `json:"dir"`
	Socks             string   `json:"socks"`
	Control           string   `json:"control"`
	Cookie            string   `json:"cookie"`
	ClientTorrc       []string `json:"client_torrc"`
	BridgeLine        string   `json:"bridge_line,omitempty"`
	BridgeClientTorrc []string `json:"bridge_client_torrc,omitempty"`
	PIDs              []int    `json:"pids"`
	// Profile is the network's link profile (see Profile).
	Profile Profile `json:"profile,omitempty"`
}

// infoFile is the name of the Info file inside Options.Dir.
const infoFile = "testnet.json"

// bootstrapTimeout bounds Start when ctx has no deadline; a healthy
// network bootstraps in ~10 s.
const bootstrapTimeout = 2 * time.Minute

// Network is a running private Tor network.
type Network struct {
	info   Info
	nodes  []*node
	shared bool // the Shared network: Close is a no-op, CloseShared stops it
	// shapers are the in-process shapers by node nickname; a Detached
	// network's shapers live in shaperProc instead.
	shapers    map[string]*netshape.Shaper
	shaperProc *exec.Cmd

	closeOnce sync.Once
}

// ClientTorrc returns the torrc lines any extra tor needs to join the
// network as a client or onion service host: TestingTorNetwork, the
// DirAuthority lines, UseEntryGuards 0 and the other client options of
// the recipe, and the GeoIP files. The joiner adds its own DataDirectory,
// SocksPort and ControlPort.
func (n *Network) ClientTorrc() []string { return append([]string(nil), n.info.ClientTorrc...) }

// BridgeClientTorrc is ClientTorrc for a client that reaches the network
// only through the obfs4 bridge (UseBridges 1, the transport plugin and the
// Bridge line; entry guards stay on, which bridges require). Nil without a
// bridge.
func (n *Network) BridgeClientTorrc() []string {
	return append([]string(nil), n.info.BridgeClientTorrc...)
}

// SocksAddr is the network client's SOCKS port, "127.0.0.1:port", with
// ExtendedErrors on.
func (n *Network) SocksAddr() string { return n.info.Socks }

// ControlAddr is the network client's control port, "127.0.0.1:port";
// authenticate with the cookie at CookiePath.
func (n *Network) ControlAddr() string { return n.info.Control }

// CookiePath is the client's control-port authentication cookie.
func (n *Network) CookiePath() string { return n.info.Cookie }

// BridgeLine is the value of a client's "Bridge" option for the network's
// obfs4 bridge, "obfs4 127.0.0.1:port FINGERPRINT cert=… iat-mode=0", or
// "" without Options.Bridge.
func (n *Network) BridgeLine() string { return n.info.BridgeLine }

// Info returns the network's description, as written to Dir/testnet.json.
func (n *Network) Info() Info {
	i := n.info
	i.ClientTorrc = n.ClientTorrc()
	i.BridgeClientTorrc = n.BridgeClientTorrc()
	i.PIDs = append([]int(nil), n.info.PIDs...)
	return i
}

// Close stops every tor process of the network and waits for them to
// exit. It is safe to call more than once. On the network returned by
// Shared it does nothing, so that one test cannot break the others.
func (n *Network) Close() error {
	if n.shared {
		return nil
	}
	return n.close()
}

func (n *Network) close() error {
	n.closeOnce.Do(func() {
		stopAll(n.nodes)
		closeShapers(n.shapers)
		stopShaperProc(n.shaperProc)
	})
	return nil
}

// Profile is the network's link profile.
func (n *Network) Profile() Profile { return n.info.Profile }

// Shaper returns the shaper in front of the named node's ORPort ("auth0",
// "relay2", ...), for fault injection (SetDown, SetResetFraction); nil on
// an unshaped network or for a Detached one (its shapers run in another
// process).
func (n *Network) Shaper(node string) *netshape.Shaper { return n.shapers[node] }

// ShapedNodes lists the nicknames of the nodes behind an in-process
// shaper, sorted.
func (n *Network) ShapedNodes() []string {
	var ns []string
	for k := range n.shapers {
		ns = append(ns, k)
	}
	slices.Sort(ns)
	return ns
}

func stopAll(nodes []*node) {
	var wg sync.WaitGroup
	for _, nd := range nodes {
		wg.Go(nd.stop)
	}
	wg.Wait()
}

// Load reads the Info that Start wrote to dir/testnet.json. A directory
// without a network gives an error matching fs.ErrNotExist.
func Load(dir string) (Info, error) {
	b, err := os.ReadFile(filepath.Join(dir, infoFile))
	if err != nil {
		return Info{}, fmt.Errorf("testnet: load: %w", err)
	}
	var i Info
	if err := json.Unmarshal(b, &i); err != nil {
		return Info{}, fmt.Errorf("testnet: load %s: %w", filepath.Join(dir, infoFile), err)
	}
	return i, nil
}

// running reports whether dir/testnet.json names a live process of dir.
func running(dir string) bool {
	info, err := Load(dir)
	if err != nil {
		return false
	}
	for _, pid := range info.PIDs {
		if processAlive(pid) && processUsesDir(pid, dir) {
			return true
		}
	}
	return false
}

// Stop ends the processes recorded in dir/testnet.json, typically those of
// a Detached network started by another process, and waits up to ~10 s for
// them to go. PIDs that no longer belong to tor processes running from dir
// are left alone. Stopping a stopped network is not an error.
func Stop(dir string) error {
	info, err := Load(dir)
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(info.Dir)
	if err != nil {
		return fmt.Errorf("testnet: stop: %w", err)
	}
	var mine []int
	for _, pid := range info.PIDs {
		if processAlive(pid) && processUsesDir(pid, abs) {
			mine = append(mine, pid)
			platform.Terminate(pid)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range mine {
		for processAlive(pid) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if processAlive(pid) {
			platform.Kill(pid)
		}
	}
	for _, pid := range mine {
		for i := 0; i < 40 && processAlive(pid); i++ {
			time.Sleep(50 * time.Millisecond)
		}
		if processAlive(pid) {
			return fmt.Errorf("testnet: stop: process %d did not exit", pid)
		}
	}
	return nil
}

// Start brings up a network in opts.Dir and returns when its client has
// bootstrapped to 100 %. Cancelling ctx aborts the start-up. On every error
// path, all processes started so far have been stopped.
func Start(ctx context.Context, opts Options) (*Network, error) {
	if opts.Dir == "" {
		return nil, errors.New("testnet: Options.Dir is required")
	}
	if opts.Relays < 1 {
		opts.Relays = DefaultRelays
	}
	if opts.Profile == "" {
		opts.Profile = ProfileLoopback
	}
	if _, err := ParseProfile(string(opts.Profile)); err != nil {
		return nil, err
	}
	if opts.shaped() && opts.Detached && len(opts.ShaperCommand) == 0 {
		return nil, errors.New("testnet: a Detached shaped network needs Options.ShaperCommand")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	opts.Dir = dir
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, bootstrapTimeout)
		defer cancel()
	}
	s := &starter{opts: opts, log: opts.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := s.prepare(ctx); err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		n, err := s.launch(ctx)
		var ee *ExitError
		if err == nil || attempt == 3 || !errors.As(err, &ee) || !ee.addrInUse() {
			return n, err
		}
		s.progress("a port was taken meanwhile; retrying with new ports")
	}
}

// starter holds the state of one Start call.
type starter struct {
	opts  Options
	log   *slog.Logger
	tools tools
	keys  map[string]nodeKeys
	nicks []string // every node but the client, authorities first
	geoIP [2]string
}

func (s *starter) progress(msg string) {
	s.log.Debug(msg)
	if s.opts.Progress != nil {
		s.opts.Progress(msg)
	}
}

const numAuthorities = 3

func authNick(i int) string  { return "auth" + strconv.Itoa(i) }
func relayNick(i int) string { return "relay" + strconv.Itoa(i) }

const bridgeNick, clientNick = "bridge", "client"

// prepare finds the programs, creates Dir, and loads or generates keys.
func (s *starter) prepare(ctx context.Context) error {
	var err error
	if s.tools.tor, err = exec.LookPath("tor"); err != nil {
		return fmt.Errorf("%w: tor: %w", ErrMissingTool, err)
	}
	if s.tools.gencert, err = exec.LookPath("tor-gencert"); err != nil {
		return fmt.Errorf("%w: tor-gencert: %w", ErrMissingTool, err)
	}
	if s.opts.Bridge {
		if s.tools.obfs4, err = lookObfs4(); err != nil {
			return err
		}
	}
	if running(s.opts.Dir) {
		return fmt.Errorf("%w: %s", ErrAlreadyRunning, s.opts.Dir)
	}
	if err := os.MkdirAll(s.opts.Dir, 0o700); err != nil {
		return fmt.Errorf("testnet: %w", err)
	}
	if err := os.Chmod(s.opts.Dir, 0o700); err != nil {
		return fmt.Errorf("testnet: %w", err)
	}
	s.geoIP = [2]string{filepath.Join(s.opts.Dir, "geoip"), filepath.Join(s.opts.Dir, "geoip6")}
	for _, p := range s.geoIP {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			return fmt.Errorf("testnet: %w", err)
		}
	}
	for i := range numAuthorities {
		s.nicks = append(s.nicks, authNick(i))
	}
	for i := range s.opts.Relays {
		s.nicks = append(s.nicks, relayNick(i))
	}
	if s.opts.Bridge {
		s.nicks = append(s.nicks, bridgeNick)
	}
	return s.loadKeys(ctx)
}

func lookObfs4() (string, error) {
	// lyrebird is the obfs4 transport's current name (Debian trixie and
	// later); obfs4proxy its old one.
	for _, name := range []string{"lyrebird", "obfs4proxy"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: lyrebird (or obfs4proxy, its old name)", ErrMissingTool)
}

// loadKeys fetches every node's keys from the cache, generating missing
// ones concurrently.
func (s *starter) loadKeys(ctx context.Context) error {
	root := s.opts.KeyCache
	if root == "" {
		var err error
		if root, err = defaultKeyCache(); err != nil {
			root = filepath.Join(s.opts.Dir, "keycache") // no cache dir: no reuse
		}
	}
	t0 := time.Now()
	s.keys = make(map[string]nodeKeys, len(s.nicks))
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []error
	)
	for i, nick := range s.nicks {
		wg.Go(func() {
			k, err := loadOrCreateKeys(ctx, s.tools, root, nick, i < numAuthorities)
			mu.Lock()
			defer mu.Unlock()
			s.keys[nick] = k
			errs = append(errs, err)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	s.log.Debug("testnet: keys ready", "cache", root, "took", time.Since(t0))
	return nil
}

// launch runs one attempt at starting the network with fresh ports.
func (s *starter) launch(ctx context.Context) (_ *Network, err error) {
	nodes, err := s.configure()
	if err != nil {
		return nil, err
	}
	// The first process to exit during start-up cancels everything with
	// its log tail as the cause. exited has room for every node, so later
	// exits never block their waiting goroutines.
	exited := make(chan *node, len(nodes))
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		shapers    map[string]*netshape.Shaper
		shaperProc *exec.Cmd
	)
	if s.opts.shaped() {
		routes := shapeRoutes(nodes, s.opts.Profile)
		if s.opts.Detached {
			shaperProc, err = s.startShaperProc(ctx, routes)
		} else {
			// Not ctx: the shapers outlive Start, until Network.Close.
			shapers, err = startShapers(context.Background(), routes, s.log)
		}
		if err != nil {
			return nil, err
		}
		s.progress(fmt.Sprintf("%d shapers up (profile %s: one-way %v±%v per hop, %d B/s per relay)",
			len(routes), s.opts.Profile, s.opts.Profile.Link().Latency, s.opts.Profile.Link().Jitter, s.opts.Profile.Link().Rate))
		defer func() {
			if err != nil {
				closeShapers(shapers)
				stopShaperProc(shaperProc)
			}
		}()
	}
	go func() {
		select {
		case nd := <-exited:
			cancel(nd.exitError())
		case <-ctx.Done():
		}
	}()
	var (
		started   []*node
		owners    sync.WaitGroup // attach goroutines, see below
		ownerErrs = make([]error, len(nodes))
	)
	defer func() {
		if err != nil {
			err = startError(ctx, err)
			cancel(err) // ends any attach still waiting
			owners.Wait()
			stopAll(started)
		}
	}()
	run := func(nd *node) error {
		if err := nd.start(s.tools.tor, s.opts.Detached, exited); err != nil {
			return err
		}
		started = append(started, nd)
		return nil
	}

	servers, client := nodes[:len(nodes)-1], nodes[len(nodes)-1]
	launch := time.Now()
	offset, validAfter := votingStartOffset(launch)
	for _, nd := range servers {
		if nd.cfg.role == roleAuthority {
			nd.cfg.votingStart = offset
		}
		if err := run(nd); err != nil {
			return nil, err
		}
	}
	// Take ownership as soon as each control port is up, so that if this
	// process dies during start-up the tors go at once rather than when
	// __OwningControllerProcess is next polled.
	if !s.opts.Detached {
		for i, nd := range servers {
			owners.Go(func() { _, ownerErrs[i] = nd.attach(ctx, true) })
		}
	}
	s.progress(fmt.Sprintf("started %d authorities and %d relays; first consensus due in %.1fs",
		numAuthorities, len(servers)-numAuthorities, time.Until(validAfter).Seconds()))
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(time.Until(validAfter.Add(-clientHeadStart))):
	}
	if err := run(client); err != nil {
		return nil, err
	}
	n := &Network{nodes: started, shapers: shapers, shaperProc: shaperProc}
	if err := s.awaitClient(ctx, n, client); err != nil {
		return nil, err
	}
	n.info.Profile = s.opts.Profile
	s.progress(fmt.Sprintf("client bootstrapped %.1fs after launch", time.Since(launch).Seconds()))
	owners.Wait()
	if err := errors.Join(ownerErrs...); err != nil {
		return nil, err
	}
	if s.opts.Bridge {
		if err := s.bridgeInfo(ctx, n, servers[len(servers)-1]); err != nil {
			return nil, err
		}
	}
	for _, nd := range started {
		n.info.PIDs = append(n.info.PIDs, nd.pid())
	}
	if shaperProc != nil {
		n.info.PIDs = append(n.info.PIDs, shaperProc.Process.Pid)
	}
	if err := writeInfo(n.info); err != nil {
		return nil, err
	}
	return n, nil
}

// startError prefers the reason start-up was cancelled (a process's exit,
// or the caller's ctx) over the error it caused downstream.
func startError(ctx context.Context, err error) error {
	if ctx.Err() == nil {
		return err
	}
	cause := context.Cause(ctx)
	var ee *ExitError
	if errors.As(cause, &ee) {
		return ee
	}
	return fmt.Errorf("testnet: start: %w", cause)
}

// configure picks ports and prepares every node's directory and config.
// The client comes last.
func (s *starter) configure() ([]*node, error) {
	perNode := map[role]int{roleAuthority: 2, roleRelay: 1, roleBridge: 2}
	nports := 0
	for i, nick := range s.nicks {
		nports += perNode[s.roleOf(i, nick)]
		if s.shapes(s.roleOf(i, nick)) {
			nports++
		}
	}
	ports, err := freePorts(nports)
	if err != nil {
		return nil, err
	}
	next := func() int { p := ports[0]; ports = ports[1:]; return p }

	var nodes []*node
	var auths []authority
	for i, nick := range s.nicks {
		r := s.roleOf(i, nick)
		nd := &node{keys: s.keys[nick], cfg: nodeConfig{
			role: r, nick: nick, dataDir: filepath.Join(s.opts.Dir, nick),
			geoIP: s.geoIP[0], geoIPv6: s.geoIP[1], orPort: next(),
		}}
		if s.shapes(r) {
			nd.cfg.shapedPort = next()
		}
		switch r {
		case roleAuthority:
			nd.cfg.dirPort = next()
			auths = append(auths, authority{nick: nick, orPort: nd.cfg.advertisedORPort(), dirPort: nd.cfg.dirPort,
				v3ident: nd.keys.v3ident, fingerprint: nd.keys.fingerprint})
		case roleBridge:
			nd.cfg.ptPort, nd.cfg.ptPath = next(), s.tools.obfs4
		}
		nodes = append(nodes, nd)
	}
	nodes = append(nodes, &node{cfg: nodeConfig{role: roleClient, nick: clientNick,
		dataDir: filepath.Join(s.opts.Dir, clientNick), geoIP: s.geoIP[0], geoIPv6: s.geoIP[1]}})
	for _, nd := range nodes {
		nd.cfg.auths = auths
		if !s.opts.Detached {
			nd.cfg.ownerPID = os.Getpid()
		}
		nd.cfg.extra = s.opts.extraTorrc[nd.nick()]
		// A previous attempt or run may have left state behind; a fresh
		// DataDirectory avoids stale consensuses with other ports.
		if err := os.RemoveAll(nd.cfg.dataDir); err != nil {
			return nil, fmt.Errorf("testnet: %w", err)
		}
		if err := os.MkdirAll(nd.cfg.dataDir, 0o700); err != nil {
			return nil, fmt.Errorf("testnet: %w", err)
		}
		if nd.cfg.role != roleClient {
			if err := installKeys(nd.keys, nd.cfg.dataDir); err != nil {
				return nil, err
			}
		}
	}
	return nodes, nil
}

// shapes reports whether a node of role r sits behind a shaper: relays
// and authorities on a shaped network (the bridge is reached through its
// obfs4 port, which stays direct).
func (s *starter) shapes(r role) bool {
	return s.opts.shaped() && (r == roleAuthority || r == roleRelay)
}

func (s *starter) roleOf(i int, nick string) role {
	switch {
	case i < numAuthorities:
		return roleAuthority
	case nick == bridgeNick:
		return roleBridge
	}
	return roleRelay
}

// awaitClient connects to the client's control port and polls its
// bootstrap phase until 100 %. Polling is simpler than events and costs
// nothing next to a ~10 s bootstrap.
func (s *starter) awaitClient(ctx context.Context, n *Network, client *node) error {
	cc, err := client.attach(ctx, !s.opts.Detached)
	if err != nil {
		return err
	}
	if s.opts.Detached {
		defer cc.Close()
	}
	last := -1
	for {
		v, err := cc.getInfo(ctx, "status/bootstrap-phase")
		if err != nil {
			return err
		}
		p, summary := bootstrapProgress(v)
		if p != last {
			s.progress(fmt.Sprintf("client bootstrapped %d%%: %s", p, summary))
			last = p
		}
		if p == 100 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	socks, err := cc.getInfo(ctx, "net/listeners/socks")
	if err != nil {
		return err
	}
	control, err := readControlPortFile(client.controlFile())
	if err != nil {
		return fmt.Errorf("testnet: %w", err)
	}
	n.info = Info{
		Dir:         s.opts.Dir,
		Socks:       strings.Trim(strings.Fields(socks + " x")[0], `"`),
		Control:     control,
		Cookie:      client.cookiePath(),
		ClientTorrc: clientTorrc(client.cfg.auths, s.geoIP[0], s.geoIP[1]),
	}
	return nil
}

// bridgeInfo waits for obfs4proxy to write its bridge line (~1.3 s after
// the bridge starts, long done by now) and records it.
func (s *starter) bridgeInfo(ctx context.Context, n *Network, bridge *node) error {
	path := filepath.Join(bridge.cfg.dataDir, "pt_state", "obfs4_bridgeline.txt")
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			if line, err := parseBridgeLine(string(b), bridge.cfg.ptPort, bridge.keys.fingerprint); err == nil {
				n.info.BridgeLine = line
				n.info.BridgeClientTorrc = bridgeClientTorrc(n.info.ClientTorrc, s.tools.obfs4, line)
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// writeInfo records the network in Dir/testnet.json for Load and Stop.
func writeInfo(i Info) error {
	b, err := json.MarshalIndent(i, "", "  ")
	if err != nil {
		return fmt.Errorf("testnet: %w", err)
	}
	tmp := filepath.Join(i.Dir, infoFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("testnet: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(i.Dir, infoFile)); err != nil {
		return fmt.Errorf("testnet: %w", err)
	}
	return nil
}
