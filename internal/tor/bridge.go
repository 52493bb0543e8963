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
	// TransportMeekLite is served by the obfs4 binary: obfs4proxy and
	// lyrebird both speak meek_lite (HTTPS to a CDN front).
	TransportMeekLite = "meek_lite"
	// TransportWebtunnel is served by lyrebird (not by the older
	// obfs4proxy) or by a webtunnel client named in tor.webtunnel_client.
	TransportWebtunnel = "webtunnel"
)

// WebtunnelNames are the binaries that speak webtunnel, in order of
// preference, when tor.webtunnel_client is not set.
var WebtunnelNames = []string{"lyrebird", "webtunnel-client"}

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
	ErrWebtunnelClientNotFound = errors.New("tor: webtunnel transport not found")
)

// Bridge is one parsed bridge line.
type Bridge struct {
	Transport   string            // TransportObfs4, TransportSnowflake, TransportMeekLite, TransportWebtunnel, or "" for a plain bridge
	Addr        netip.AddrPort    // IP:PORT
	Fingerprint string            // 40 hex digits, or "" when the line has none
	Args        map[string]string // key=value arguments of the transport
	Line        string            // the line as tor gets it, without "Bridge "
}

// ParseBridge parses and checks a bridge line ("Bridge " prefix optional):
//
//	obfs4 IP:PORT [FINGERPRINT] cert=… iat-mode=0|1|2
//	snowflake IP:PORT FINGERPRINT fingerprint=FINGERPRINT url=https://broker/ [fronts=a,b] [ice=stun:host:port,…] […]
//	meek_lite IP:PORT FINGERPRINT url=https://meek.example/ [front=cdn.example]
//	webtunnel IP:PORT FINGERPRINT url=https://bridge.example/secret-path [ver=0.0.1]
//	IP:PORT [FINGERPRINT]
//
// For snowflake, meek_lite and webtunnel the address is a placeholder tor
// needs (the transport reaches the bridge through url=, or snowflake's
// sqsqueue=) and the fingerprint must be given, so tor can check it is
// talking to the bridge it was told of; for snowflake it must agree with
// fingerprint=. Errors wrap ErrBadConfig and quote the line.
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
		case TransportObfs4, TransportSnowflake, TransportMeekLite, TransportWebtunnel:
		default:
			return bad("transport %q is not supported (mmogit supports %s, %s, %s and %s bridges)",
				b.Transport, TransportObfs4, TransportSnowflake, TransportMeekLite, TransportWebtunnel)
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
	case TransportMeekLite, TransportWebtunnel:
		if b.Fingerprint == "" {
			return bad("%s needs the bridge's fingerprint after IP:PORT", b.Transport)
		}
		v, ok := b.Args["url"]
		if !ok {
			return bad("%s needs url=https://…", b.Transport)
		}
		// Both carry tor's cells inside TLS to url's host; plain http
		// would show a censor the traffic they are meant to hide.
		if u, err := url.Parse(v); err != nil || u.Scheme != "https" || u.Host == "" {
			return bad("%s url=%s is not an https URL", b.Transport, v)
		}
		if v, ok := b.Args["front"]; ok && (v == "" || strings.ContainsAny(v, "/:,")) {
			return bad("%s front=%s: want one host name", b.Transport, v)
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

// FindWebtunnel resolves the webtunnel transport binary: configured when
// set, else lyrebird, else webtunnel-client, from PATH. obfs4proxy, the
// older name of lyrebird, does not speak webtunnel. The error wraps
// ErrWebtunnelClientNotFound.
func FindWebtunnel(configured string) (string, error) {
	if configured != "" {
		p, err := exec.LookPath(configured)
		if err != nil {
			return "", fmt.Errorf("%w: tor.webtunnel_client %q: %w", ErrWebtunnelClientNotFound, configured, err)
		}
		return p, nil
	}
	for _, name := range WebtunnelNames {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: webtunnel bridges need lyrebird (obfs4proxy, its older name, does not speak webtunnel) "+
		"or a webtunnel client, and none is on PATH; install lyrebird (Debian 13 and later) or set tor.webtunnel_client to its path",
		ErrWebtunnelClientNotFound)
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

// resolveTransports sets c.Obfs4Proxy, c.SnowflakeClient and
// c.WebtunnelClient to the binaries of the transports c.Bridges use.
func (c *Config) resolveTransports() error {
	_, used, err := bridgeTransports(c.Bridges)
	if err != nil {
		return err
	}
	if used[TransportObfs4] || used[TransportMeekLite] {
		if c.Obfs4Proxy, err = FindObfs4(c.Obfs4Proxy); err != nil {
			return err
		}
	}
	if used[TransportWebtunnel] {
		if c.WebtunnelClient, err = FindWebtunnel(c.WebtunnelClient); err != nil {
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

// transportPlugins maps the transports in used to the binaries that serve
// them, one ClientTransportPlugin line per binary ("obfs4,meek_lite exec
// /usr/bin/obfs4proxy"), in a stable order. tor launches each binary once
// and asks it for all the transports on its line.
func transportPlugins(cfg Config, used map[string]bool) ([]string, error) {
	var (
		order []string
		byBin = map[string][]string{}
	)
	for _, p := range []struct{ transport, bin, key string }{
		{TransportObfs4, cfg.Obfs4Proxy, "Obfs4Proxy"},
		{TransportMeekLite, cfg.Obfs4Proxy, "Obfs4Proxy"},
		{TransportSnowflake, cfg.SnowflakeClient, "SnowflakeClient"},
		{TransportWebtunnel, cfg.WebtunnelClient, "WebtunnelClient"},
	} {
		if !used[p.transport] {
			continue
		}
		if p.bin == "" {
			return nil, fmt.Errorf("%w: %s bridges but no %s binary", ErrBadConfig, p.transport, p.key)
		}
		if err := checkLine(p.key, p.bin); err != nil {
			return nil, err
		}
		if _, ok := byBin[p.bin]; !ok {
			order = append(order, p.bin)
		}
		byBin[p.bin] = append(byBin[p.bin], p.transport)
	}
	lines := make([]string, 0, len(order))
	for _, bin := range order {
		lines = append(lines, "ClientTransportPlugin "+strings.Join(byBin[bin], ",")+" exec "+bin)
	}
	return lines, nil
}
