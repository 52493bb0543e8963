// Package config holds the agent's settings, stored as <config-dir>/tor.json
// (mode 0600). A missing file means the defaults; the defaults are written
// the first time so users can see and edit them.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// FileName is the config file inside the config directory.
const FileName = "tor.json"

// Transport is a transport policy: how the agent may reach a peer.
type Transport string

// Transport policies. New installations default to Tor only.
const (
	Tor    Transport = "tor"    // only onion services; never an IP address
	Direct Transport = "direct" // TCP only; peers see our IP address
	Hybrid Transport = "hybrid" // onion first, TCP after HybridTimeout
)

// ParseTransport validates a transport name.
func ParseTransport(s string) (Transport, error) {
	switch t := Transport(strings.ToLower(strings.TrimSpace(s))); t {
	case Tor, Direct, Hybrid:
		return t, nil
	}
	return "", fmt.Errorf("config: unknown transport %q (want tor, direct or hybrid)", s)
}

// Config is the whole of tor.json.
type Config struct {
	// Transport is the global policy; PeerTransport overrides it per peer
	// (key: peer ID or onion address).
	Transport     Transport            `json:"transport"`
	PeerTransport map[string]Transport `json:"peer_transport,omitempty"`
	// HybridTimeout is how long hybrid mode tries Tor before direct.
	HybridTimeout Duration `json:"hybrid_timeout"`
	// Listen are TCP multiaddrs for direct/hybrid mode; ignored in tor mode.
	Listen []string `json:"listen,omitempty"`
	// Bootstrap are DHT bootstrap peers: onion addresses or multiaddrs.
	// There are no public defaults: an agent only knows whom you tell it.
	Bootstrap []string `json:"bootstrap,omitempty"`
	// Services are advertised in the DHT while the agent runs.
	Services []string `json:"services,omitempty"`
	// AdvertisementTTL is how long a signed advertisement stays valid; the
	// agent republishes it before then. An agent that stops disappears
	// from discovery within this time.
	AdvertisementTTL Duration    `json:"advertisement_ttl"`
	Tor              TorSettings `json:"tor"`
}

// TorSettings configures the tor daemon the agent starts or attaches to.
type TorSettings struct {
	// Binary is the tor executable (default: "tor" from PATH).
	Binary string `json:"binary,omitempty"`
	// OnionPort is the virtual port of the agent's onion service.
	OnionPort int `json:"onion_port"`
	// UseBridges and Bridges ("obfs4 IP:PORT FP cert=… iat-mode=0") for
	// censored networks; Obfs4Proxy is the pluggable transport binary.
	UseBridges bool     `json:"use_bridges,omitempty"`
	Bridges    []string `json:"bridges,omitempty"`
	Obfs4Proxy string   `json:"obfs4proxy,omitempty"`
	// BootstrapTimeout fails start-up when tor makes no progress for this long.
	BootstrapTimeout Duration `json:"bootstrap_timeout"`
	// PoW enables onion-service proof-of-work DoS defences when tor has them.
	PoW bool `json:"pow"`
	// Attach uses an already running tor instead of starting one.
	Attach *Attach `json:"attach,omitempty"`
	// ExtraTorrc lines are appended to the generated torrc.
	ExtraTorrc []string `json:"extra_torrc,omitempty"`
}

// Attach points at a running tor, e.g. Debian's system tor.
type Attach struct {
	Control    string `json:"control"` // "unix:/run/tor/control" or "127.0.0.1:9051"
	Socks      string `json:"socks"`   // "127.0.0.1:9050"
	CookiePath string `json:"cookie_path,omitempty"`
	Password   string `json:"password,omitempty"`
}

// Default is the configuration of a new installation.
func Default() Config {
	return Config{
		Transport:        Tor,
		HybridTimeout:    Duration(30 * time.Second),
		Listen:           []string{"/ip4/127.0.0.1/tcp/0"},
		Services:         []string{"memory_sync"},
		AdvertisementTTL: Duration(time.Hour),
		Tor: TorSettings{
			OnionPort:        7420,
			BootstrapTimeout: Duration(3 * time.Minute),
			PoW:              true,
		},
	}
}

// Validate checks values that would otherwise fail late.
func (c *Config) Validate() error {
	if _, err := ParseTransport(string(c.Transport)); err != nil {
		return err
	}
	for p, t := range c.PeerTransport {
		if _, err := ParseTransport(string(t)); err != nil {
			return fmt.Errorf("config: peer_transport[%s]: %w", p, err)
		}
	}
	if c.Tor.OnionPort <= 0 || c.Tor.OnionPort > 65535 {
		return fmt.Errorf("config: tor.onion_port %d out of range", c.Tor.OnionPort)
	}
	for _, l := range append(append([]string{}, c.Tor.Bridges...), c.Tor.ExtraTorrc...) {
		if strings.ContainsAny(l, "\r\n") {
			return fmt.Errorf("config: torrc line %q contains a newline", l)
		}
	}
	return nil
}

// Load reads <dir>/tor.json, writing the defaults first if it is missing.
func Load(dir string) (Config, error) {
	p := filepath.Join(dir, FileName)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		c := Default()
		return c, Save(dir, c)
	}
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	c := Default()
	if err := json.Unmarshal(b, &c); err != nil {
		return Config{}, fmt.Errorf("config: %s: %w", p, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%w (in %s)", err, p)
	}
	return c, nil
}

// Save writes c to <dir>/tor.json atomically with mode 0600.
func Save(dir string, c Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".tor.json-*")
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("config: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	// CreateTemp already made the file 0600.
	return os.Rename(tmp.Name(), filepath.Join(dir, FileName))
}

// Duration is a time.Duration written as "30s" in JSON.
type Duration time.Duration

// D returns the duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON accepts "30s" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("config: duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("config: duration %s: want \"30s\" or seconds", b)
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}
