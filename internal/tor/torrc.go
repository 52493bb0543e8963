package tor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Errors callers branch on. Their messages say how to fix the problem.
var (
	ErrTorNotFound = errors.New("tor: tor binary not found (install it with: apt-get install -y tor, then check that tor --version says 0.4.8 or newer)")
	// ErrTorTooOld is wrapped with the version found and UpgradeHint.
	ErrTorTooOld = errors.New("tor: tor is older than 0.4.8, which mmogit needs")
	ErrBadConfig = errors.New("tor: bad configuration")
)

// UpgradeHint says how to get tor 0.4.8 or newer on Debian. Debian 12
// (bookworm) was released with 0.4.7 and its tor package is brought up to
// date only in later point releases, so "apt-get install tor" on a
// bookworm that was not updated, or on an older release, still gives a tor
// that is too old.
const UpgradeHint = "upgrade it: apt-get update && apt-get install -y tor (an up-to-date Debian 12 bookworm ships 0.4.9; " +
	"one that was not updated, or an older release, has 0.4.7 or less); if that still installs a tor older than 0.4.8, " +
	"use the Tor Project's own Debian repository, deb.torproject.org (instructions at support.torproject.org/apt)"

// minVersion is the oldest tor mmogit runs with: 0.4.8 brought the onion
// service proof-of-work defences and the SOCKS and control behaviour the
// project was tested against.
var minVersion = Version{Major: 0, Minor: 4, Micro: 8, Raw: "0.4.8"}

// tooOld is the error for a tor older than minVersion; what names it
// (a binary path or a control address).
func tooOld(what string, v Version) error {
	return fmt.Errorf("%w: %s is version %s; %s", ErrTorTooOld, what, v, UpgradeHint)
}

// Version is a tor version such as 0.4.9.11.
type Version struct {
	Major, Minor, Micro, Patch int
	Raw                        string // as tor printed it, e.g. "0.4.9.11" or "0.4.8.12-dev"
}

// ParseVersion parses "0.4.9.11", "0.4.8.12-dev" or "Tor version 0.4.9.11.".
func ParseVersion(s string) (Version, error) {
	s = strings.TrimSpace(s)
	if f := strings.Fields(s); len(f) >= 3 && f[0] == "Tor" && f[1] == "version" {
		s = strings.TrimSuffix(f[2], ".")
	}
	raw := s
	if i := strings.IndexAny(s, "- "); i >= 0 {
		s = s[:i]
	}
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return Version{}, fmt.Errorf("tor: cannot parse version %q", raw)
	}
	var n [4]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 {
			return Version{}, fmt.Errorf("tor: cannot parse version %q", raw)
		}
		n[i] = v
	}
	return Version{Major: n[0], Minor: n[1], Micro: n[2], Patch: n[3], Raw: raw}, nil
}

// AtLeast reports whether v >= major.minor.micro.
func (v Version) AtLeast(major, minor, micro int) bool {
	if v.Major != major {
		return v.Major > major
	}
	if v.Minor != minor {
		return v.Minor > minor
	}
	return v.Micro >= micro
}

func (v Version) String() string { return v.Raw }

// versionTimeout bounds "tor --version"; a variable for tests.
var versionTimeout = 10 * time.Second

// findTor resolves the tor binary and checks it is at least minVersion.
func findTor(ctx context.Context, path string) (string, Version, error) {
	if path == "" {
		path = "tor"
	}
	bin, err := exec.LookPath(path)
	if err != nil {
		return "", Version{}, fmt.Errorf("%w: %w", ErrTorNotFound, err)
	}
	vctx, cancel := context.WithTimeout(ctx, versionTimeout)
	defer cancel()
	cmd := exec.CommandContext(vctx, bin, "--version")
	cmd.WaitDelay = time.Second // a child holding stdout open must not hang us
	out, err := cmd.Output()
	if err != nil {
		if vctx.Err() != nil && ctx.Err() == nil {
			return "", Version{}, fmt.Errorf("%w: %s --version did not finish within %v", ErrTorNotFound, bin, versionTimeout)
		}
		if ctx.Err() != nil {
			return "", Version{}, fmt.Errorf("tor: %s --version: %w", bin, ctx.Err())
		}
		return "", Version{}, fmt.Errorf("%w: %s --version: %w", ErrTorNotFound, bin, err)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	v, err := ParseVersion(first)
	if err != nil {
		return "", Version{}, err
	}
	if !v.AtLeast(minVersion.Major, minVersion.Minor, minVersion.Micro) {
		return "", v, tooOld(bin, v)
	}
	return bin, v, nil
}

// maxSocketPath is the longest unix socket path that fits sun_path (108
// bytes on Linux, with the terminating NUL), with a margin.
const maxSocketPath = 100

// The unix sockets tor listens on, in Config.socketDir().
const (
	controlSocketName = "control.sock"
	socksSocketName   = "socks.sock"
)

// usableSocketPath reports whether p can be one of tor's unix sockets:
// short enough for sun_path, and free of what tor's quoting of port lines
// would have to get right.
func usableSocketPath(p string) bool {
	return len(p) <= maxSocketPath && !strings.ContainsAny(p, "\"\\\r\n\x00")
}

// socketsFit reports whether both of tor's sockets can live in dir.
func socketsFit(dir string) bool {
	return usableSocketPath(filepath.Join(dir, controlSocketName)) &&
		usableSocketPath(filepath.Join(dir, socksSocketName))
}

// socketValue is p as a ControlSocket value. tor splits port lines at
// spaces, so a path with one (a home directory like "/home/J Doe") must be
// given as unix:"path"; DataDirectory and Log file take the rest of the
// line and need no quoting.
func socketValue(p string) string {
	if strings.ContainsAny(p, " \t") {
		return `unix:"` + p + `"`
	}
	return p
}

// socksValue is p as the address of a SocksPort line: unix:/path, or
// unix:"/path" when it has a space.
func socksValue(p string) string {
	if strings.ContainsAny(p, " \t") {
		return `unix:"` + p + `"`
	}
	return "unix:" + p
}

// listenerOptions are the torrc options that open a listener (most of them
// on TCP). The managed tor's only listeners are the two unix sockets
// buildTorrc writes, so ExtraTorrc may not add any.
var listenerOptions = []string{
	"SocksPort", "ControlPort", "ControlSocket", "ORPort", "DirPort", "DNSPort",
	"TransPort", "NATDPort", "HTTPTunnelPort", "MetricsPort", "ExtORPort",
	"SocksListenAddress", "ORListenAddress", "DirListenAddress", "DNSListenAddress",
	"TransListenAddress", "NATDListenAddress", "ControlListenAddress",
}

// opensListener reports whether torrc line l sets one of listenerOptions
// (tor matches option names case-insensitively; "+" and "/" prefixes
// append or clear, "__" names the hidden variants).
func opensListener(l string) (string, bool) {
	f := strings.Fields(l)
	if len(f) == 0 || strings.HasPrefix(f[0], "#") {
		return "", false
	}
	name := strings.TrimLeft(f[0], "+/")
	name = strings.TrimPrefix(name, "__")
	for _, o := range listenerOptions {
		if strings.EqualFold(name, o) {
			return f[0], true
		}
	}
	return "", false
}

// checkLine refuses torrc values that would start a new torrc line.
func checkLine(what, s string) error {
	if strings.ContainsAny(s, "\r\n\x00") {
		return fmt.Errorf("%w: %s %q contains a line break", ErrBadConfig, what, s)
	}
	return nil
}

// buildTorrc returns the torrc lines for cfg. It is pure: the caller has
// already resolved paths and checked the binaries exist.
func buildTorrc(cfg Config, pid int) ([]string, error) {
	if cfg.DataDir == "" || !filepath.IsAbs(cfg.DataDir) {
		return nil, fmt.Errorf("%w: DataDir must be an absolute path, got %q", ErrBadConfig, cfg.DataDir)
	}
	if err := checkLine("DataDir", cfg.DataDir); err != nil {
		return nil, err
	}
	dir := cfg.socketDir()
	if !socketsFit(dir) {
		return nil, fmt.Errorf("%w: tor's unix sockets cannot go in %s (a path of at most %d bytes without quotes or backslashes is needed); set TMPDIR to a short plain path", ErrBadConfig, dir, maxSocketPath)
	}
	// SOCKS on a unix socket in the private socket directory: only this
	// user can use the agent's circuits and its client authorization
	// keys, and tor opens no TCP listener at all. Without GroupWritable
	// or WorldWritable tor creates it accessible to its own user only.
	socks := "SocksPort " + socksValue(filepath.Join(dir, socksSocketName)) + " ExtendedErrors IsolateSOCKSAuth"
	if cfg.SocksFlags != "" {
		if err := checkLine("SocksFlags", cfg.SocksFlags); err != nil {
			return nil, err
		}
		socks += " " + cfg.SocksFlags
	}
	lines := []string{
		"DataDirectory " + cfg.DataDir,
		socks,
		"CookieAuthentication 1",
		"__OwningControllerProcess " + strconv.Itoa(pid),
		"Log notice file " + filepath.Join(cfg.DataDir, "tor.log"),
		"ShutdownWaitLength 0",
		"RunAsDaemon 0",
	}
	lines = append(lines, "ControlSocket "+socketValue(filepath.Join(dir, controlSocketName)))
	if cfg.DisableNetwork {
		lines = append(lines, "DisableNetwork 1")
	}
	if cfg.UseBridges {
		bridges, used, err := bridgeTransports(cfg.Bridges)
		if err != nil {
			return nil, err
		}
		lines = append(lines, "UseBridges 1")
		plugins, err := transportPlugins(cfg, used)
		if err != nil {
			return nil, err
		}
		lines = append(lines, plugins...)
		for _, b := range bridges {
			lines = append(lines, "Bridge "+b.Line)
		}
	}
	for _, l := range cfg.ExtraTorrc {
		if err := checkLine("torrc line", l); err != nil {
			return nil, err
		}
		if opt, ok := opensListener(l); ok {
			return nil, fmt.Errorf("%w: torrc line %q: %s opens a listener; the agent's tor listens only on its own unix sockets (SOCKS and control) in its private data directory", ErrBadConfig, l, opt)
		}
		lines = append(lines, l)
	}
	return lines, nil
}

// writePrivateDir creates dir (and parents) and forces it to 0700, which
// tor requires of its DataDirectory and of a ControlSocket's directory.
func writePrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("tor: data dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("tor: data dir: %w", err)
	}
	return nil
}
