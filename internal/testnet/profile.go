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
	"strconv"
	"strings"
	"time"

	"github.com/mmogit/mmogit/internal/netshape"
	"github.com/mmogit/mmogit/internal/platform"
)

// Profile names the link conditions of a network. Every relay's and
// authority's ORPort sits behind a netshape.Shaper (tor listens on a
// private port with NoAdvertise and advertises the shaper's port with
// NoListen), so every hop of every circuit pays the profile's one-way
// latency in each direction and shares the relay's bandwidth cap.
// Directory uploads to the authorities' DirPorts and the obfs4 bridge are
// not shaped.
type Profile string

const (
	// ProfileLoopback is today's network: no shaping (the default, for
	// fast tests).
	ProfileLoopback Profile = "loopback"
	// ProfilePublic makes raw tor look like the public Tor network: a new
	// onion connection in 1.5–5 s, a rendezvous-circuit round trip of
	// 0.3–1 s, a bulk stream of 0.5–2 MB/s (measured: docs/private-network.md).
	ProfilePublic Profile = "public"
	// ProfileSlow is ProfilePublic's latency with ~100 KB/s per circuit,
	// where circuits through bridges (obfs4, snowflake) often are.
	ProfileSlow Profile = "slow"
)

// Profiles lists the known profiles, default first.
var Profiles = []Profile{ProfileLoopback, ProfilePublic, ProfileSlow}

// ProfileEnv is the environment variable that picks the Shared network's
// profile (make test-public sets it to "public").
const ProfileEnv = "MMOGIT_TESTNET_PROFILE"

// ErrUnknownProfile is returned for a profile name that is not one of
// Profiles.
var ErrUnknownProfile = errors.New("testnet: unknown profile")

// ParseProfile accepts a profile name; "" means ProfileLoopback.
func ParseProfile(s string) (Profile, error) {
	if s == "" {
		return ProfileLoopback, nil
	}
	for _, p := range Profiles {
		if string(p) == s {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w %q (want one of %s)", ErrUnknownProfile, s, joinProfiles())
}

func joinProfiles() string {
	var ss []string
	for _, p := range Profiles {
		ss = append(ss, string(p))
	}
	return strings.Join(ss, ", ")
}

// ProfileFromEnv is the profile named by $MMOGIT_TESTNET_PROFILE.
func ProfileFromEnv() (Profile, error) {
	p, err := ParseProfile(os.Getenv(ProfileEnv))
	if err != nil {
		return "", fmt.Errorf("$%s: %w", ProfileEnv, err)
	}
	return p, nil
}

// Shaped reports whether the profile puts shapers in front of the relays.
func (p Profile) Shaped() bool { return p != "" && p != ProfileLoopback }

// Link is the shaping of each relay's ORPort under p. The figures were
// tuned with `mmogit testnet calibrate` until raw tor fell in the ranges
// of the profile's doc; see docs/private-network.md for the measurements.
func (p Profile) Link() netshape.Config {
	switch p {
	case ProfilePublic:
		return netshape.Config{Latency: 30 * time.Millisecond, Jitter: 8 * time.Millisecond, Rate: 2 << 20}
	case ProfileSlow:
		return netshape.Config{Latency: 30 * time.Millisecond, Jitter: 8 * time.Millisecond, Rate: 128 << 10}
	}
	return netshape.Config{}
}

// shapeRoute is one shaper of a network: it listens on Listen and forwards
// to tor's real ORPort, Target.
type shapeRoute struct {
	Node   string          `json:"node"`
	Listen string          `json:"listen"`
	Target string          `json:"target"`
	Config netshape.Config `json:"config"`
}

// shapeFile is what a detached shaper process reads (Dir/shaper.json).
type shapeFile struct {
	Dir     string       `json:"dir"`
	Profile Profile      `json:"profile"`
	Routes  []shapeRoute `json:"routes"`
}

const (
	shapeFileName  = "shaper.json"
	shapeReadyName = "shaper.ready"
)

// routes lists the shapers a network with these nodes needs.
func shapeRoutes(nodes []*node, p Profile) []shapeRoute {
	var rs []shapeRoute
	for i, nd := range nodes {
		if nd.cfg.shapedPort == 0 {
			continue
		}
		cfg := p.Link()
		cfg.Seed = uint64(i + 1) // repeatable, and different per relay
		rs = append(rs, shapeRoute{
			Node:   nd.nick(),
			Listen: "127.0.0.1:" + strconv.Itoa(nd.cfg.shapedPort),
			Target: "127.0.0.1:" + strconv.Itoa(nd.cfg.orPort),
			Config: cfg,
		})
	}
	return rs
}

// startShapers runs the routes' shapers in this process until ctx ends or
// they are closed.
func startShapers(ctx context.Context, routes []shapeRoute, log *slog.Logger) (map[string]*netshape.Shaper, error) {
	out := make(map[string]*netshape.Shaper, len(routes))
	for _, r := range routes {
		s, err := netshape.Listen(ctx, r.Listen, r.Target, r.Config, log)
		if err != nil {
			closeShapers(out)
			return nil, fmt.Errorf("testnet: shaper for %s: %w", r.Node, err)
		}
		out[r.Node] = s
	}
	return out, nil
}

func closeShapers(m map[string]*netshape.Shaper) {
	for _, s := range m {
		s.Close()
	}
}

// RunShaper serves the shapers described in configPath (Dir/shaper.json,
// written by Start for a Detached shaped network) until ctx ends. It is
// the body of the hidden `mmogit testnet shape` command, which Start runs
// as its own process through Options.ShaperCommand so that the shapers
// outlive `mmogit testnet up`. Once every shaper listens it writes
// Dir/shaper.ready.
func RunShaper(ctx context.Context, configPath string, log *slog.Logger) error {
	b, err := os.ReadFile(configPath)
	if err != nil {
		return fmt.Errorf("testnet: shaper: %w", err)
	}
	var f shapeFile
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("testnet: shaper: %s: %w", configPath, err)
	}
	if len(f.Routes) == 0 {
		return fmt.Errorf("testnet: shaper: %s has no routes", configPath)
	}
	for _, r := range f.Routes {
		if err := r.Config.Validate(); err != nil {
			return fmt.Errorf("testnet: shaper: %s: route %s: %w", configPath, r.Node, err)
		}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := startShapers(ctx, f.Routes, log)
	if err != nil {
		return err
	}
	defer closeShapers(m)
	ready := filepath.Join(filepath.Dir(configPath), shapeReadyName)
	if err := os.WriteFile(ready, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return fmt.Errorf("testnet: shaper: %w", err)
	}
	<-ctx.Done()
	return nil
}

// startShaperProc writes Dir/shaper.json and runs Options.ShaperCommand on
// it as a detached process (its log in Dir/shaper.log), returning once the
// process reports every shaper listening.
func (s *starter) startShaperProc(ctx context.Context, routes []shapeRoute) (*exec.Cmd, error) {
	cfgPath := filepath.Join(s.opts.Dir, shapeFileName)
	ready := filepath.Join(s.opts.Dir, shapeReadyName)
	b, err := json.MarshalIndent(shapeFile{Dir: s.opts.Dir, Profile: s.opts.Profile, Routes: routes}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	if err := os.WriteFile(cfgPath, append(b, '\n'), 0o600); err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	os.Remove(ready)
	logPath := filepath.Join(s.opts.Dir, "shaper.log")
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	defer logf.Close()
	args := append(append([]string(nil), s.opts.ShaperCommand[1:]...), "--config", cfgPath)
	cmd := exec.Command(s.opts.ShaperCommand[0], args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	platform.Detach(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("testnet: start shaper: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	for {
		if _, err := os.Stat(ready); err == nil {
			return cmd, nil
		}
		select {
		case <-done:
			return nil, fmt.Errorf("testnet: shaper process exited early; log tail:\n%s", logTail(logPath, 10))
		case <-ctx.Done():
			stopShaperProc(cmd)
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stopShaperProc ends a detached shaper process started by this process.
func stopShaperProc(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	platform.Terminate(cmd.Process.Pid)
	for i := 0; i < 100 && processAlive(cmd.Process.Pid); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if processAlive(cmd.Process.Pid) {
		cmd.Process.Kill()
	}
}
