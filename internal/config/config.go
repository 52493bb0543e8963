// Package config holds the agent's settings, stored as <config-dir>/tor.json
// (mode 0600). A missing file means the defaults; the defaults are written
// the first time so users can see and edit them.
//
// An agent whose onion service is restricted (tor.authorized_clients)
// does not publish advertisements to the DHT (neither the configured
// services nor `tor advertise`) unless tor.advertise_restricted is true:
// see Config.Advertises.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/mmogit/mmogit/internal/onion"
	"github.com/mmogit/mmogit/internal/platform"
	"github.com/mmogit/mmogit/internal/tor"
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
	// Sync limits the memory sync (see SyncSettings).
	Sync SyncSettings `json:"sync"`
	// DHT bounds what this agent's DHT server keeps for others (see
	// DHTSettings).
	DHT DHTSettings `json:"dht"`
	// Timeouts bound dials and syncs (see TimeoutSettings).
	Timeouts TimeoutSettings `json:"timeouts"`
}

// TimeoutSettings bound how long the agent waits on the network. The
// defaults suit the public Tor network, where a new onion connection takes
// seconds and a bridge circuit may move well under 200 KB/s.
type TimeoutSettings struct {
	// Dial bounds one connection attempt (SOCKS connect to the onion
	// service, then the libp2p handshake).
	Dial Duration `json:"dial"`
	// Connect bounds reaching a peer, retries of transient onion failures
	// included.
	Connect Duration `json:"connect"`
	// SyncIdle cuts off a sync when no byte moves either way for this
	// long; a slow transfer that keeps moving is never cut off.
	SyncIdle Duration `json:"sync_idle"`
	// Sync bounds one whole sync session with one peer.
	Sync Duration `json:"sync"`
}

// DHTSettings bound the advertisements and provider records this agent's
// DHT server stores for other agents. Any fresh key can sign a valid
// advertisement, so without caps a peer minting keys could grow the
// agent's memory for the records' whole lifetime. Past a cap the record
// written longest ago is dropped; the agent's own are never dropped.
type DHTSettings struct {
	// MaxRecords caps the signed advertisements kept for others.
	MaxRecords int `json:"max_records"`
	// MaxProviders caps provider records (agent X offers service S).
	MaxProviders int `json:"max_providers"`
	// MaxProvidersPerPeer caps one peer's provider records, so one peer
	// cannot crowd out the others.
	MaxProvidersPerPeer int `json:"max_providers_per_peer"`
}

// SyncSettings bound what a sync costs this agent.
type SyncSettings struct {
	// Concurrency is how many peers a bare `mmogit sync` syncs at once.
	Concurrency int `json:"concurrency"`
	// QuotaMessages and QuotaBytes bound what each peer with the write
	// role may store here per day (bytes of content); past them its
	// messages are refused and counted. 0 means unlimited.
	QuotaMessages int   `json:"quota_messages_per_day"`
	QuotaBytes    int64 `json:"quota_bytes_per_day"`
}

// TorSettings configures the tor daemon the agent starts or attaches to.
type TorSettings struct {
	// Binary is the tor executable (default: "tor" from PATH).
	Binary string `json:"binary,omitempty"`
	// OnionPort is the virtual port of the agent's onion service.
	OnionPort int `json:"onion_port"`
	// UseBridges and Bridges for censored networks: "obfs4 IP:PORT FP
	// cert=… iat-mode=0", "snowflake IP:PORT FP fingerprint=FP url=…
	// [fronts=…] [ice=…]", "meek_lite IP:PORT FP url=https://… [front=…]"
	// or "webtunnel IP:PORT FP url=https://…" lines (see tor.ParseBridge).
	// Obfs4Proxy is the obfs4 and meek_lite transport binary ("" =
	// lyrebird, else obfs4proxy, from PATH); SnowflakeClient the snowflake
	// one ("" = snowflake-client from PATH); WebtunnelClient the webtunnel
	// one ("" = lyrebird, else webtunnel-client, from PATH).
	UseBridges      bool     `json:"use_bridges,omitempty"`
	Bridges         []string `json:"bridges,omitempty"`
	Obfs4Proxy      string   `json:"obfs4proxy,omitempty"`
	SnowflakeClient string   `json:"snowflake_client,omitempty"`
	WebtunnelClient string   `json:"webtunnel_client,omitempty"`
	// BootstrapTimeout fails start-up when tor makes no progress for this long.
	BootstrapTimeout Duration `json:"bootstrap_timeout"`
	// PoW enables onion-service proof-of-work DoS defences when tor has them.
	PoW bool `json:"pow"`
	// MaxStreams caps concurrent streams per rendezvous circuit of the
	// onion service (0 = tor's default, unlimited); a client opening more
	// has its circuit closed.
	MaxStreams int `json:"max_streams,omitempty"`
	// AuthorizedClients restricts the agent's onion service to these
	// clients (x25519 public keys, base32, from `mmogit tor auth-key`):
	// tor refuses everyone else before the agent sees a byte. Empty means
	// anyone who knows the address may connect.
	AuthorizedClients []string `json:"authorized_clients,omitempty"`
	// AdvertiseRestricted lets an agent with AuthorizedClients publish its
	// advertisement to the DHT. Off by default: an advertisement tells
	// everyone in the DHT the agent's onion address, public key, services
	// and when it is online, which a restricted agent usually wants only
	// its authorized clients to know (they are given the address out of
	// band). Ignored without AuthorizedClients, which always advertise.
	AdvertiseRestricted bool `json:"advertise_restricted,omitempty"`
	// ClientAuth holds this agent's keys for restricted peers: onion
	// address → x25519 private key (base64), given to tor at every start.
	ClientAuth map[string]string `json:"client_auth,omitempty"`
	// Attach uses an already running tor instead of starting one.
	Attach *Attach `json:"attach,omitempty"`
	// ExtraTorrc lines are appended to the generated torrc.
	ExtraTorrc []string `json:"extra_torrc,omitempty"`
}

// Advertises reports whether the agent publishes advertisements to the
// DHT: always, unless its onion service is restricted
// (tor.authorized_clients) and tor.advertise_restricted is not set.
func (c Config) Advertises() bool {
	return len(c.Tor.AuthorizedClients) == 0 || c.Tor.AdvertiseRestricted
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
		Sync:             SyncSettings{Concurrency: 4, QuotaMessages: 10000, QuotaBytes: 50 << 20},
		// The discovery package's defaults (an agent test checks they
		// agree): far above what a network of agents needs, an agent
		// stores one advertisement and at most 32 provider records.
		DHT:      DHTSettings{MaxRecords: 4096, MaxProviders: 8192, MaxProvidersPerPeer: 32},
		Timeouts: DefaultTimeouts(),
		Tor: TorSettings{
			OnionPort:        7420,
			BootstrapTimeout: Duration(3 * time.Minute),
			PoW:              true,
		},
	}
}

// DefaultTimeouts are the timeouts section's defaults.
func DefaultTimeouts() TimeoutSettings {
	return TimeoutSettings{
		Dial:     Duration(time.Minute),
		Connect:  Duration(3 * time.Minute),
		SyncIdle: Duration(time.Minute),
		Sync:     Duration(30 * time.Minute),
	}
}

// FieldError is an invalid or unknown value in tor.json; Field is its
// JSON path ("tor.bootstrap_timeout", "peer_transport[12D3…]").
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return fmt.Sprintf("field %q: %v", e.Field, e.Err) }
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// maxAdvertisementTTL is the longest lifetime discovery accepts for a
// signed advertisement (discovery.MaxLifetime).
const maxAdvertisementTTL = 24 * time.Hour

// Validate checks values that would otherwise fail late (or never): each
// error is a *FieldError naming the field.
func (c *Config) Validate() error {
	if _, err := ParseTransport(string(c.Transport)); err != nil {
		return fieldErr("transport", "unknown transport %q (want tor, direct or hybrid)", c.Transport)
	}
	for p, t := range c.PeerTransport {
		if strings.TrimSpace(p) == "" {
			return fieldErr("peer_transport", "empty peer key")
		}
		if _, err := ParseTransport(string(t)); err != nil {
			return fieldErr("peer_transport["+p+"]", "unknown transport %q (want tor, direct or hybrid)", t)
		}
	}
	if err := positive("hybrid_timeout", c.HybridTimeout, 0); err != nil {
		return err
	}
	if err := positive("advertisement_ttl", c.AdvertisementTTL, maxAdvertisementTTL); err != nil {
		return err
	}
	if c.AdvertisementTTL.D() < time.Second {
		return fieldErr("advertisement_ttl", "%s is shorter than 1s", c.AdvertisementTTL.D())
	}
	for _, f := range []struct {
		name string
		list []string
	}{{"listen", c.Listen}, {"bootstrap", c.Bootstrap}, {"services", c.Services}} {
		name := f.name
		for i, v := range f.list {
			if strings.TrimSpace(v) == "" || strings.ContainsAny(v, " \t\r\n\x00") {
				return fieldErr(fmt.Sprintf("%s[%d]", name, i), "%q is empty or contains whitespace", v)
			}
		}
	}
	if c.Sync.Concurrency < 1 || c.Sync.Concurrency > 64 {
		return fieldErr("sync.concurrency", "%d out of range 1..64", c.Sync.Concurrency)
	}
	if c.Sync.QuotaMessages < 0 {
		return fieldErr("sync.quota_messages_per_day", "%d is negative (0 = unlimited)", c.Sync.QuotaMessages)
	}
	if c.Sync.QuotaBytes < 0 {
		return fieldErr("sync.quota_bytes_per_day", "%d is negative (0 = unlimited)", c.Sync.QuotaBytes)
	}
	for _, f := range []struct {
		name      string
		v, lo, hi int
	}{
		{"dht.max_records", c.DHT.MaxRecords, 16, 1 << 20},
		{"dht.max_providers", c.DHT.MaxProviders, 16, 1 << 20},
		{"dht.max_providers_per_peer", c.DHT.MaxProvidersPerPeer, 1, 1024},
	} {
		if f.v < f.lo || f.v > f.hi {
			return fieldErr(f.name, "%d out of range %d..%d", f.v, f.lo, f.hi)
		}
	}
	to := c.Timeouts
	for _, f := range []struct {
		name   string
		v      Duration
		lo, hi time.Duration
	}{
		{"timeouts.dial", to.Dial, time.Second, time.Hour},
		{"timeouts.connect", to.Connect, time.Second, 24 * time.Hour},
		{"timeouts.sync_idle", to.SyncIdle, time.Second, time.Hour},
		{"timeouts.sync", to.Sync, time.Second, 24 * time.Hour},
	} {
		if f.v.D() < f.lo || f.v.D() > f.hi {
			return fieldErr(f.name, "%s out of range %s..%s", f.v.D(), f.lo, f.hi)
		}
	}
	if to.Connect.D() < to.Dial.D() {
		return fieldErr("timeouts.connect", "%s is shorter than timeouts.dial (%s): no dial could finish", to.Connect.D(), to.Dial.D())
	}
	t := c.Tor
	if t.OnionPort <= 0 || t.OnionPort > 65535 {
		return fieldErr("tor.onion_port", "%d out of range 1..65535", t.OnionPort)
	}
	if t.MaxStreams < 0 || t.MaxStreams > 65535 {
		return fieldErr("tor.max_streams", "%d out of range 0..65535 (0 = unlimited)", t.MaxStreams)
	}
	if err := positive("tor.bootstrap_timeout", t.BootstrapTimeout, 0); err != nil {
		return err
	}
	if strings.ContainsAny(t.Binary, "\r\n\x00") {
		return fieldErr("tor.binary", "%q contains a newline", t.Binary)
	}
	if strings.ContainsAny(t.Obfs4Proxy, "\r\n\x00") {
		return fieldErr("tor.obfs4proxy", "%q contains a newline", t.Obfs4Proxy)
	}
	if strings.ContainsAny(t.SnowflakeClient, "\r\n\x00") {
		return fieldErr("tor.snowflake_client", "%q contains a newline", t.SnowflakeClient)
	}
	if strings.ContainsAny(t.WebtunnelClient, "\r\n\x00") {
		return fieldErr("tor.webtunnel_client", "%q contains a newline", t.WebtunnelClient)
	}
	for _, f := range []struct {
		name string
		list []string
	}{{"tor.bridges", t.Bridges}, {"tor.extra_torrc", t.ExtraTorrc}} {
		name := f.name
		for i, l := range f.list {
			if strings.ContainsAny(l, "\r\n\x00") {
				return fieldErr(fmt.Sprintf("%s[%d]", name, i), "torrc line %q contains a newline", l)
			}
			if strings.TrimSpace(l) == "" {
				return fieldErr(fmt.Sprintf("%s[%d]", name, i), "empty line")
			}
		}
	}
	for i, l := range t.Bridges {
		if _, err := tor.ParseBridge(l); err != nil {
			return &FieldError{Field: fmt.Sprintf("tor.bridges[%d]", i), Err: err}
		}
	}
	for i, k := range t.AuthorizedClients {
		if _, err := onion.ParseClientPublicKey(k); err != nil {
			return &FieldError{Field: fmt.Sprintf("tor.authorized_clients[%d]", i), Err: err}
		}
	}
	if len(t.AuthorizedClients) > 0 {
		// The restriction is tor's, on the onion service only: a TCP
		// listener would let anyone in.
		leaky := c.Transport != Tor
		for _, pt := range c.PeerTransport {
			leaky = leaky || pt != Tor
		}
		if leaky {
			return fieldErr("tor.authorized_clients", "restricts only the onion service, but with transport %q or a direct/hybrid peer_transport the agent's TCP listener accepts anyone: use \"transport\": \"tor\" without such overrides", c.Transport)
		}
	}
	if len(t.ClientAuth) > 0 && t.Attach != nil {
		return fieldErr("tor.client_auth", "needs the agent's own tor: a shared tor (tor.attach) would give these keys to every program using its SocksPort, keep them after the agent stops, and drop them on every reload")
	}
	addrs := make([]string, 0, len(t.ClientAuth))
	for addr := range t.ClientAuth {
		addrs = append(addrs, addr)
	}
	sort.Strings(addrs) // the same first error on every run
	for _, addr := range addrs {
		if _, err := onion.Parse(addr); err != nil {
			// Not echoed: a key swapped with its value is a private key.
			return fieldErr("tor.client_auth", "a key is not a valid v3 onion address: keys are the restricted peers' addresses, values the private keys from `mmogit tor auth-key`")
		}
		if _, err := onion.ParseClientPrivateKey(t.ClientAuth[addr]); err != nil {
			return &FieldError{Field: "tor.client_auth[" + addr + "]", Err: err}
		}
	}
	if a := t.Attach; a != nil {
		if strings.TrimSpace(a.Control) == "" {
			return fieldErr("tor.attach.control", "missing (\"unix:/run/tor/control\" or \"127.0.0.1:9051\")")
		}
	}
	return nil
}

// positive checks that d > 0 and, when max > 0, d <= max.
func positive(field string, d Duration, max time.Duration) error {
	if d.D() <= 0 {
		return fieldErr(field, "must be positive, got %s", d.D())
	}
	if max > 0 && d.D() > max {
		return fieldErr(field, "%s is longer than the maximum %s", d.D(), max)
	}
	return nil
}

// Load reads <dir>/tor.json, writing the defaults first if it is missing.
// Unknown fields, values of the wrong type and invalid values are errors
// that name the field; fields left out keep their defaults.
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
	c, err := Parse(b)
	if err != nil {
		return Config{}, fmt.Errorf("config: %s: %w", p, err)
	}
	if len(c.Tor.ClientAuth) > 0 {
		// Private keys live in it now, so it gets the seed's rule.
		if fi, err := os.Stat(p); err == nil && platform.OthersAccess(fi) != 0 {
			return Config{}, fmt.Errorf("config: %s holds client authorization keys (tor.client_auth) but has mode %04o, readable by others: run `chmod 600 %s`", p, fi.Mode().Perm(), p)
		}
	}
	return c, nil
}

// Parse decodes and validates the contents of a tor.json over the defaults.
func Parse(b []byte) (Config, error) {
	c := Default()
	dec := json.NewDecoder(bytes.NewReader(b))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return Config{}, fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Config{}, errors.New("invalid JSON: data after the top-level object")
	}
	if err := decodeStrict(raw, reflect.ValueOf(&c).Elem(), ""); err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// decodeStrict decodes raw into v, refusing unknown fields at every level
// and naming the field (its JSON path) in every error. Struct fields are
// matched by their exact JSON name; null leaves a field as it is.
func decodeStrict(raw json.RawMessage, v reflect.Value, path string) error {
	name := path
	if name == "" {
		name = "(top level)"
	}
	if string(bytes.TrimSpace(raw)) == "null" {
		return nil
	}
	isStruct := v.Kind() == reflect.Struct || (v.Kind() == reflect.Pointer && v.Type().Elem().Kind() == reflect.Struct)
	if !isStruct || v.Addr().Type().Implements(reflect.TypeFor[json.Unmarshaler]()) {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v.Addr().Interface()); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				err = fmt.Errorf("want %s, got JSON %s", te.Type, te.Value)
			}
			return &FieldError{Field: name, Err: err}
		}
		return nil
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		v = v.Elem()
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return &FieldError{Field: name, Err: fmt.Errorf("want a JSON object, got %s", firstToken(raw))}
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys) // the first error is the same on every run
	t := v.Type()
	for _, k := range keys {
		sub := k
		if path != "" {
			sub = path + "." + k
		}
		i := fieldIndex(t, k)
		if i < 0 {
			return &FieldError{Field: sub, Err: errors.New("unknown field")}
		}
		if err := decodeStrict(obj[k], v.Field(i), sub); err != nil {
			return err
		}
	}
	return nil
}

// fieldIndex finds the struct field whose JSON name is name, or -1.
func fieldIndex(t reflect.Type, name string) int {
	for i := range t.NumField() {
		tag := strings.Split(t.Field(i).Tag.Get("json"), ",")[0]
		if tag != "" && tag != "-" && tag == name {
			return i
		}
	}
	return -1
}

func firstToken(raw json.RawMessage) string {
	s := strings.TrimSpace(string(raw))
	if len(s) > 20 {
		s = s[:20] + "…"
	}
	return s
}

// Save writes c to <dir>/tor.json atomically with mode 0600.
func Save(dir string, c Config) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
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
			return fmt.Errorf("duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("duration %s: want a string like \"30s\" or a number of seconds", b)
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}
