package tor

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
)

// The pluggable transports a bridge line may name.
const (
	TransportObfs4     = "obfs4"
	TransportSnowflake = "snowflake"
)

// Obfs4Names are the names the obfs4 transport binary goes by, in order
// of preference: Debian ships it as lyrebird since trixie; obfs4proxy is
// its old name (Debian 12 and older).
var Obfs4Names = []string{"lyrebird", "obfs4proxy"}

// SnowflakeClientName is the snowflake transport binary (Debian package
// snowflake-client).
const SnowflakeClientName = "snowflake-client"

// Errors for a missing transport binary, wrapped with what was looked for
// and how to install it.
var (
	ErrObfs4ProxyNotFound      = errors.New("tor: obfs4 transport not found")
	ErrSnowflakeClientNotFound = errors.New("tor: snowflake transport not found")
)

// Bridge is one parsed bridge line.
type Bridge struct {
	Transport   string            // TransportObfs4, TransportSnowflake, or "" for a plain bridge
	Addr        netip.AddrPort    // IP:PORT
	Fingerprint string            // 40 hex digits, or "" when the line has none
	Args        map[string]string // key=value arguments of the transport
	Line        string            // the line as tor gets it, without "Bridge "
}

// ParseBridge parses and checks a bridge line ("Bridge " prefix optional):
//
//	obfs4 IP:PORT [FINGERPRINT] cert=… iat-mode=0|1|2
//	snowflake IP:PORT FINGERPRINT fingerprint=FINGERPRINT url=https://broker/ [fronts=a,b] [ice=stun:host:port,…] […]
//	IP:PORT [FINGERPRINT]
//
// For snowflake the address is a placeholder tor needs (the transport
// reaches the bridge through the broker at url=, or sqsqueue=); the
// fingerprint must be given and agree with fingerprint=. Errors wrap
// ErrBadConfig and quote the line.
func ParseBridge(line string) (Bridge, error) {
	s := strings.TrimSpace(line)
	if f := strings.Fields(s); len(f) > 0 && strings.EqualFold(f[0], "Bridge") {
		s = strings.TrimSpace(s[len(f[0]):])
	}
	bad := func(format string, a ...any) (Bridge, error) {
		return Bridge{}, fmt.Errorf("%w: bridge line %q: %s", ErrBadConfig, line, fmt.Sprintf(format, a...))
	}
	if s == "" {
		return bad("empty")
	}
	if strings.ContainsAny(s, "\r\n\x00") {
		return bad("contains a line break")
	}
	f := strings.Fields(s)
	b := Bridge{Args: map[string]string{}, Line: strings.Join(f, " ")}
	if _, err := netip.ParseAddrPort(f[0]); err != nil {
		b.Transport = f[0]
		f = f[1:]
		switch b.Transport {
		case TransportObfs4, TransportSnowflake:
		default:
			return bad("transport %q is not supported (mmogit supports %s and %s bridges)", b.Transport, TransportObfs4, TransportSnowflake)
		}
	}
	if len(f) == 0 {
		return bad("no IP:PORT address")
	}
	ap, err := netip.ParseAddrPort(f[0])
	if err != nil || ap.Port() == 0 {
		return bad("%q is not an IP:PORT address", f[0])
	}
	b.Addr, f = ap, f[1:]
	if len(f) > 0 && !strings.Contains(f[0], "=") {
		if !isFingerprint(f[0]) {
			return bad("fingerprint %q is not 40 hex digits", f[0])
		}
		b.Fingerprint, f = strings.ToUpper(f[0]), f[1:]
	}
	for _, kv := range f {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return bad("%q is not a key=value argument", kv)
		}
		if _, dup := b.Args[k]; dup {
			return bad("argument %s given twice", k)
		}
		b.Args[k] = v
	}
	switch b.Transport {
	case "":
		if len(b.Args) > 0 {
			return bad("a bridge without a transport takes no key=value arguments")
		}
	case TransportObfs4:
		cert, ok := b.Args["cert"]
		if !ok || cert == "" {
			return bad("obfs4 needs cert=… (the bridge's obfs4 certificate)")
		}
		if strings.Trim(cert, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") != "" {
			return bad("obfs4 cert=%s is not base64", cert)
		}
		switch iat, ok := b.Args["iat-mode"]; {
		case !ok:
			return bad("obfs4 needs iat-mode=0, 1 or 2")
		case iat != "0" && iat != "1" && iat != "2":
			return bad("obfs4 iat-mode=%s: want 0, 1 or 2", iat)
		}
	case TransportSnowflake:
		if b.Fingerprint == "" {
			return bad("snowflake needs the bridge's fingerprint after IP:PORT")
		}
		fp, ok := b.Args["fingerprint"]
		if !ok {
			return bad("snowflake needs fingerprint=%s", b.Fingerprint)
		}
		if !strings.EqualFold(fp, b.Fingerprint) {
			return bad("fingerprint=%s differs from the fingerprint %s after IP:PORT", fp, b.Fingerprint)
		}
		_, hasURL := b.Args["url"]
		_, hasSQS := b.Args["sqsqueue"]
		if !hasURL && !hasSQS {
			return bad("snowflake needs url=https://… (the broker; or sqsqueue=…)")
		}
		for _, k := range []string{"url", "ampcache", "sqsqueue"} {
			if v, ok := b.Args[k]; ok {
				if u, err := url.Parse(v); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
					return bad("snowflake %s=%s is not an http(s) URL", k, v)
				}
			}
		}
		for _, k := range []string{"front", "fronts"} {
			if v, ok := b.Args[k]; ok {
				for _, h := range strings.Split(v, ",") {
					if h == "" || strings.ContainsAny(h, "/:") {
						return bad("snowflake %s=%s: want comma-separated host names", k, v)
					}
				}
			}
		}
		if v, ok := b.Args["ice"]; ok {
			for _, srv := range strings.Split(v, ",") {
				if !strings.HasPrefix(srv, "stun:") && !strings.HasPrefix(srv, "stuns:") && !strings.HasPrefix(srv, "turn:") && !strings.HasPrefix(srv, "turns:") {
					return bad("snowflake ice=%s: want comma-separated stun:HOST:PORT (or turn:) servers, %q is not one", v, srv)
				}
			}
		}
		if v, ok := b.Args["max"]; ok {
			if n, err := strconv.Atoi(v); err != nil || n < 1 {
				return bad("snowflake max=%s: want a positive number of peers", v)
			}
		}
	}
	return b, nil
}

func isFingerprint(s string) bool {
	if len(s) != 40 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// FindObfs4 resolves the obfs4 transport binary: configured (a path or a
// name looked up on PATH) when set, else lyrebird, else obfs4proxy from
// PATH. The error wraps ErrObfs4ProxyNotFound.
func FindObfs4(configured string) (string, error) {
	if configured != "" {
		p, err := exec.LookPath(configured)
		if err != nil {
			return "", fmt.Errorf("%w: tor.obfs4proxy %q: %w", ErrObfs4ProxyNotFound, configured, err)
		}
		return p, nil
	}
	for _, name := range Obfs4Names {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: obfs4 bridges need lyrebird or obfs4proxy (its old name), and neither is on PATH; "+
		"install one (apt-get install -y lyrebird, or apt-get install -y obfs4proxy on a Debian without lyrebird) or set tor.obfs4proxy to its path",
		ErrObfs4ProxyNotFound)
}

// FindSnowflakeClient resolves the snowflake transport binary: configured
// when set, else snowflake-client from PATH. The error wraps
// ErrSnowflakeClientNotFound.
func FindSnowflakeClient(configured string) (string, error) {
	name := configured
	if name == "" {
		name = SnowflakeClientName
	}
	p, err := exec.LookPath(name)
	if err != nil {
		if configured != "" {
			return "", fmt.Errorf("%w: tor.snowflake_client %q: %w", ErrSnowflakeClientNotFound, configured, err)
		}
		return "", fmt.Errorf("%w: snowflake bridges need snowflake-client, which is not on PATH; "+
			"install it (apt-get install -y snowflake-client) or set tor.snowflake_client to its path", ErrSnowflakeClientNotFound)
	}
	return p, nil
}

// bridgeTransports parses bridges and reports which transports they use.
func bridgeTransports(bridges []string) ([]Bridge, map[string]bool, error) {
	if len(bridges) == 0 {
		return nil, nil, fmt.Errorf("%w: UseBridges set but no Bridges given", ErrBadConfig)
	}
	var out []Bridge
	used := map[string]bool{}
	for _, l := range bridges {
		b, err := ParseBridge(l)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, b)
		if b.Transport != "" {
			used[b.Transport] = true
		}
	}
	return out, used, nil
}

// resolveTransports sets c.Obfs4Proxy and c.SnowflakeClient to the
// binaries of the transports c.Bridges use.
func (c *Config) resolveTransports() error {
	_, used, err := bridgeTransports(c.Bridges)
	if err != nil {
		return err
	}
	if used[TransportObfs4] {
		if c.Obfs4Proxy, err = FindObfs4(c.Obfs4Proxy); err != nil {
			return err
		}
	}
	if used[TransportSnowflake] {
		if c.SnowflakeClient, err = FindSnowflakeClient(c.SnowflakeClient); err != nil {
			return err
		}
	}
	return nil
}
