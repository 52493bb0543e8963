package tor

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	testFP    = "2B280B23E1107BB62ABFC40DDCC8824814F80A72"
	obfs4Line = "obfs4 192.0.2.1:443 " + testFP + " cert=ssH+9rP8dG2NLDN2XuFw63hIO/9MNNinLmxQDpVa+7kTOa9/m+tGWT1SmSYpQ9uTBGa6Hw iat-mode=0"
	// As Tor Browser ships it (fronts and ICE servers shortened).
	snowflakeLine = "snowflake 192.0.2.3:80 " + testFP + " fingerprint=" + testFP +
		" url=https://1098762253.rsc.cdn77.org/ fronts=www.cdn77.com,www.phpmyadmin.net" +
		" ice=stun:stun.antisip.com:3478,stun:stun.epygi.com:3478 utls-imitate=hellorandomizedalpn"
	// As Tor Browser shipped its default meek bridge.
	meekLine = "meek_lite 192.0.2.18:80 BE776A53492E1E044A26F17306E1BC46A55A1625 url=https://meek.azureedge.net/ front=ajax.aspnetcdn.com"
	// In the form bridges.torproject.org hands out webtunnel bridges.
	webtunnelLine = "webtunnel [2001:db8:1234::1]:443 " + testFP + " url=https://bridge.example/Xk3pQ9 ver=0.0.1"
)

func TestParseBridge(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		transport  string
		wantErr    string // substring of the error; "" for a valid line
	}{
		{"obfs4", obfs4Line, TransportObfs4, ""},
		{"obfs4 with Bridge prefix", "Bridge " + obfs4Line, TransportObfs4, ""},
		{"obfs4 without fingerprint", "obfs4 192.0.2.1:443 cert=abc iat-mode=1", TransportObfs4, ""},
		{"obfs4 IPv6", "obfs4 [2001:db8::1]:443 " + testFP + " cert=abc iat-mode=2", TransportObfs4, ""},
		{"snowflake", snowflakeLine, TransportSnowflake, ""},
		{"snowflake minimal", "snowflake 192.0.2.3:80 " + testFP + " fingerprint=" + testFP + " url=https://broker.example/", TransportSnowflake, ""},
		{"meek_lite", meekLine, TransportMeekLite, ""},
		{"meek_lite without front", "meek_lite 192.0.2.18:80 " + testFP + " url=https://meek.example/", TransportMeekLite, ""},
		{"webtunnel", webtunnelLine, TransportWebtunnel, ""},
		{"plain", "192.0.2.9:9001 " + testFP, "", ""},
		{"plain without fingerprint", "192.0.2.9:9001", "", ""},

		{"empty", "  ", "", "empty"},
		{"unknown transport", "scramblesuit 192.0.2.1:80 " + testFP + " password=x", "", `transport "scramblesuit" is not supported`},
		{"meek_lite no fingerprint", "meek_lite 192.0.2.18:80 url=https://meek.example/", "", "meek_lite needs the bridge's fingerprint"},
		{"meek_lite no url", "meek_lite 192.0.2.18:80 " + testFP + " front=a.example", "", "meek_lite needs url="},
		{"meek_lite plain http", "meek_lite 192.0.2.18:80 " + testFP + " url=http://meek.example/", "", "not an https URL"},
		{"meek_lite bad front", "meek_lite 192.0.2.18:80 " + testFP + " url=https://meek.example/ front=https://a.example", "", "want one host name"},
		{"webtunnel no url", "webtunnel 192.0.2.1:443 " + testFP + " ver=0.0.1", "", "webtunnel needs url="},
		{"webtunnel url not a URL", "webtunnel 192.0.2.1:443 " + testFP + " url=bridge.example/path", "", "not an https URL"},
		{"no address", "obfs4", "", "no IP:PORT"},
		{"host name address", "obfs4 bridge.example:443 cert=abc iat-mode=0", "", "not an IP:PORT"},
		{"port 0", "obfs4 192.0.2.1:0 cert=abc iat-mode=0", "", "not an IP:PORT"},
		{"short fingerprint", "obfs4 192.0.2.1:443 ABCD cert=abc iat-mode=0", "", "not 40 hex digits"},
		{"bare word", "obfs4 192.0.2.1:443 " + testFP + " cert=abc iat-mode=0 junk", "", `"junk" is not a key=value`},
		{"duplicate arg", obfs4Line + " iat-mode=1", "", "iat-mode given twice"},
		{"obfs4 no cert", "obfs4 192.0.2.1:443 " + testFP + " iat-mode=0", "", "obfs4 needs cert="},
		{"obfs4 empty cert", "obfs4 192.0.2.1:443 " + testFP + " cert= iat-mode=0", "", "obfs4 needs cert="},
		{"obfs4 cert not base64", "obfs4 192.0.2.1:443 " + testFP + " cert=a%b iat-mode=0", "", "not base64"},
		{"obfs4 no iat-mode", "obfs4 192.0.2.1:443 " + testFP + " cert=abc", "", "obfs4 needs iat-mode"},
		{"obfs4 bad iat-mode", "obfs4 192.0.2.1:443 " + testFP + " cert=abc iat-mode=3", "", "iat-mode=3"},
		{"snowflake no fingerprint", "snowflake 192.0.2.3:80 url=https://broker.example/", "", "needs the bridge's fingerprint"},
		{"snowflake no fingerprint=", "snowflake 192.0.2.3:80 " + testFP + " url=https://broker.example/", "", "needs fingerprint="},
		{"snowflake fingerprints differ", "snowflake 192.0.2.3:80 " + testFP + " fingerprint=0123456789ABCDEF0123456789ABCDEF01234567 url=https://b.example/", "", "differs"},
		{"snowflake no broker", "snowflake 192.0.2.3:80 " + testFP + " fingerprint=" + testFP + " fronts=a.example", "", "needs url="},
		{"snowflake bad url", "snowflake 192.0.2.3:80 " + testFP + " fingerprint=" + testFP + " url=broker.example", "", "not an http(s) URL"},
		{"snowflake bad fronts", "snowflake 192.0.2.3:80 " + testFP + " fingerprint=" + testFP + " url=https://b.example/ fronts=https://a.example", "", "host names"},
		{"snowflake bad ice", "snowflake 192.0.2.3:80 " + testFP + " fingerprint=" + testFP + " url=https://b.example/ ice=stun.example:3478", "", "stun:HOST:PORT"},
		{"plain with args", "192.0.2.9:9001 cert=abc", "", "takes no key=value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := ParseBridge(tc.line)
			if tc.wantErr != "" {
				if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want ErrBadConfig with %q", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), "bridge line") {
					t.Errorf("error %q does not name the line", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b.Transport != tc.transport || strings.HasPrefix(b.Line, "Bridge") {
				t.Errorf("parsed %+v", b)
			}
		})
	}
}

// TestBridgeTorrc: each transport's plugin line appears once, only when a
// bridge uses it, with the resolved binary.
func TestBridgeTorrc(t *testing.T) {
	plain := "192.0.2.9:9001 " + testFP
	for _, tc := range []struct {
		name      string
		cfg       Config
		want, not []string
		wantErr   string
	}{
		{name: "obfs4", cfg: Config{Bridges: []string{obfs4Line}, Obfs4Proxy: "/usr/bin/lyrebird"},
			want: []string{"UseBridges 1", "ClientTransportPlugin obfs4 exec /usr/bin/lyrebird", "Bridge " + obfs4Line},
			not:  []string{"ClientTransportPlugin snowflake"}},
		{name: "snowflake", cfg: Config{Bridges: []string{snowflakeLine}, SnowflakeClient: "/usr/bin/snowflake-client"},
			want: []string{"UseBridges 1", "ClientTransportPlugin snowflake exec /usr/bin/snowflake-client", "Bridge " + snowflakeLine},
			not:  []string{"ClientTransportPlugin obfs4"}},
		{name: "both", cfg: Config{Bridges: []string{"Bridge " + obfs4Line, snowflakeLine, "obfs4 192.0.2.2:443 cert=abc iat-mode=0"}, Obfs4Proxy: "/o", SnowflakeClient: "/s"},
			want: []string{"ClientTransportPlugin obfs4 exec /o", "ClientTransportPlugin snowflake exec /s",
				"Bridge " + obfs4Line, "Bridge " + snowflakeLine, "Bridge obfs4 192.0.2.2:443 cert=abc iat-mode=0"}},
		{name: "meek_lite shares the obfs4 binary", cfg: Config{Bridges: []string{obfs4Line, meekLine}, Obfs4Proxy: "/usr/bin/obfs4proxy"},
			want: []string{"ClientTransportPlugin obfs4,meek_lite exec /usr/bin/obfs4proxy", "Bridge " + meekLine},
			not:  []string{"ClientTransportPlugin obfs4 exec", "ClientTransportPlugin meek_lite exec"}},
		{name: "meek_lite alone", cfg: Config{Bridges: []string{meekLine}, Obfs4Proxy: "/o"},
			want: []string{"ClientTransportPlugin meek_lite exec /o"}, not: []string{"obfs4,"}},
		{name: "lyrebird serves webtunnel too", cfg: Config{Bridges: []string{obfs4Line, webtunnelLine}, Obfs4Proxy: "/usr/bin/lyrebird", WebtunnelClient: "/usr/bin/lyrebird"},
			want: []string{"ClientTransportPlugin obfs4,webtunnel exec /usr/bin/lyrebird", "Bridge " + webtunnelLine}},
		{name: "separate webtunnel client", cfg: Config{Bridges: []string{webtunnelLine, snowflakeLine}, WebtunnelClient: "/w", SnowflakeClient: "/s"},
			want: []string{"ClientTransportPlugin snowflake exec /s", "ClientTransportPlugin webtunnel exec /w"}},
		{name: "unresolved webtunnel", cfg: Config{Bridges: []string{webtunnelLine}}, wantErr: "no WebtunnelClient binary"},
		{name: "unresolved meek_lite", cfg: Config{Bridges: []string{meekLine}}, wantErr: "no Obfs4Proxy binary"},
		{name: "plain", cfg: Config{Bridges: []string{plain}},
			want: []string{"UseBridges 1", "Bridge " + plain}, not: []string{"ClientTransportPlugin"}},
		{name: "no bridges", cfg: Config{}, wantErr: "no Bridges"},
		{name: "bad line named", cfg: Config{Bridges: []string{"obfs4 192.0.2.1:443 cert=abc"}, Obfs4Proxy: "/o"}, wantErr: `"obfs4 192.0.2.1:443 cert=abc"`},
		{name: "unresolved obfs4", cfg: Config{Bridges: []string{obfs4Line}}, wantErr: "no Obfs4Proxy binary"},
		{name: "unresolved snowflake", cfg: Config{Bridges: []string{snowflakeLine}}, wantErr: "no SnowflakeClient binary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.DataDir, cfg.UseBridges = "/var/lib/mmogit/tor", true
			lines, err := buildTorrc(cfg, 1)
			if tc.wantErr != "" {
				if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want ErrBadConfig with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			joined := strings.Join(lines, "\n")
			for _, w := range tc.want {
				if n := strings.Count(joined+"\n", w+"\n"); n != 1 {
					t.Errorf("torrc has %q %d times, want once:\n%s", w, n, joined)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(joined, n) {
					t.Errorf("torrc has %q:\n%s", n, joined)
				}
			}
		})
	}
}

// fakeBins makes a directory holding executables with the given names and
// makes it the whole PATH.
func fakeBins(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", dir)
	return dir
}

func TestFindTransports(t *testing.T) {
	for _, tc := range []struct {
		name       string
		onPath     []string
		configured string
		want       string // base name found; "" for an error
		wantErr    []string
	}{
		{name: "lyrebird preferred", onPath: []string{"lyrebird", "obfs4proxy"}, want: "lyrebird"},
		{name: "obfs4proxy fallback", onPath: []string{"obfs4proxy"}, want: "obfs4proxy"},
		{name: "configured wins", onPath: []string{"lyrebird", "my-obfs4"}, configured: "my-obfs4", want: "my-obfs4"},
		{name: "neither", onPath: nil, wantErr: []string{"lyrebird", "obfs4proxy", "apt-get install"}},
		{name: "configured missing", onPath: []string{"lyrebird"}, configured: "/nonexistent/obfs4", wantErr: []string{"tor.obfs4proxy", "/nonexistent/obfs4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fakeBins(t, tc.onPath...)
			p, err := FindObfs4(tc.configured)
			if tc.want == "" {
				if !errors.Is(err, ErrObfs4ProxyNotFound) {
					t.Fatalf("FindObfs4 = %q, %v; want ErrObfs4ProxyNotFound", p, err)
				}
				t.Log(err)
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				return
			}
			if err != nil || filepath.Base(p) != tc.want || !filepath.IsAbs(p) {
				t.Fatalf("FindObfs4 = %q, %v; want %s", p, err, tc.want)
			}
		})
	}

	fakeBins(t, "snowflake-client")
	if p, err := FindSnowflakeClient(""); err != nil || filepath.Base(p) != "snowflake-client" {
		t.Errorf("FindSnowflakeClient = %q, %v", p, err)
	}
	fakeBins(t)
	if _, err := FindSnowflakeClient(""); !errors.Is(err, ErrSnowflakeClientNotFound) || !strings.Contains(err.Error(), "apt-get install -y snowflake-client") {
		t.Errorf("no snowflake-client: %v", err)
	}
	if _, err := FindSnowflakeClient("/nonexistent/sf"); !errors.Is(err, ErrSnowflakeClientNotFound) || !strings.Contains(err.Error(), "tor.snowflake_client") {
		t.Errorf("configured snowflake-client missing: %v", err)
	}

	// Start resolves only the transports the bridges use: snowflake
	// bridges need no obfs4 binary.
	dir := fakeBins(t, "snowflake-client")
	cfg := Config{UseBridges: true, Bridges: []string{snowflakeLine}}
	if err := cfg.resolveTransports(); err != nil || cfg.SnowflakeClient != filepath.Join(dir, "snowflake-client") || cfg.Obfs4Proxy != "" {
		t.Errorf("resolve snowflake only: %+v, %v", cfg, err)
	}
	cfg = Config{UseBridges: true, Bridges: []string{snowflakeLine, obfs4Line}}
	if err := cfg.resolveTransports(); !errors.Is(err, ErrObfs4ProxyNotFound) {
		t.Errorf("obfs4 bridge without a binary: %v", err)
	}
	// meek_lite is served by the obfs4 binary.
	dir = fakeBins(t, "obfs4proxy")
	cfg = Config{UseBridges: true, Bridges: []string{meekLine}}
	if err := cfg.resolveTransports(); err != nil || cfg.Obfs4Proxy != filepath.Join(dir, "obfs4proxy") {
		t.Errorf("resolve meek_lite: %+v, %v", cfg, err)
	}
	// webtunnel: lyrebird, or a webtunnel client; obfs4proxy does not
	// speak it, and the error says so.
	for _, tc := range []struct {
		onPath []string
		want   string
	}{
		{[]string{"lyrebird", "webtunnel-client"}, "lyrebird"},
		{[]string{"webtunnel-client", "obfs4proxy"}, "webtunnel-client"},
		{[]string{"obfs4proxy"}, ""},
	} {
		fakeBins(t, tc.onPath...)
		p, err := FindWebtunnel("")
		if tc.want == "" {
			if !errors.Is(err, ErrWebtunnelClientNotFound) || !strings.Contains(err.Error(), "obfs4proxy, its older name, does not speak webtunnel") {
				t.Errorf("webtunnel with %v: %q, %v", tc.onPath, p, err)
			}
			continue
		}
		if err != nil || filepath.Base(p) != tc.want {
			t.Errorf("webtunnel with %v = %q, %v; want %s", tc.onPath, p, err, tc.want)
		}
	}
	if _, err := FindWebtunnel("/nonexistent/wt"); !errors.Is(err, ErrWebtunnelClientNotFound) || !strings.Contains(err.Error(), "tor.webtunnel_client") {
		t.Errorf("configured webtunnel client missing: %v", err)
	}
	if !slices.Contains(Obfs4Names, "lyrebird") || Obfs4Names[0] != "lyrebird" {
		t.Errorf("Obfs4Names = %v, want lyrebird first", Obfs4Names)
	}
}

// TestTorAcceptsBridgeTorrc starts a real tor, network disabled, with an
// obfs4 and a snowflake bridge and the transports found on PATH: tor's own
// parser must accept the lines buildTorrc writes, and hold them as given.
// Nothing leaves the machine, so the snowflake broker is never contacted
// (a snowflake bridge cannot be exercised offline).
func TestTorAcceptsBridgeTorrc(t *testing.T) {
	for _, bin := range []string{"tor", SnowflakeClientName} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not installed; scripts/deps.sh installs it", bin)
			}
			t.Skipf("%s not installed", bin)
		}
	}
	if _, err := FindObfs4(""); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	ctx := testCtx(t, 30*time.Second)
	d, err := Start(ctx, Config{
		DataDir: filepath.Join(t.TempDir(), "tor"), DisableNetwork: true,
		UseBridges: true, Bridges: []string{obfs4Line, snowflakeLine, meekLine},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(context.Background()) })
	conf, err := d.ControlConn().GetConf(ctx, "UseBridges", "Bridge", "ClientTransportPlugin")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("tor's configuration: %q", conf)
	if v := conf["UseBridges"]; len(v) != 1 || v[0] != "1" {
		t.Errorf("UseBridges = %q", v)
	}
	if v := conf["Bridge"]; !slices.Equal(v, []string{obfs4Line, snowflakeLine, meekLine}) {
		t.Errorf("Bridge = %q, want the three lines", v)
	}
	plugins := strings.Join(conf["ClientTransportPlugin"], "\n")
	for _, want := range []string{"obfs4,meek_lite exec /", "snowflake exec /"} {
		if !strings.Contains(plugins, want) {
			t.Errorf("ClientTransportPlugin %q lacks %q", plugins, want)
		}
	}
	if !strings.Contains(plugins, "/"+SnowflakeClientName) {
		t.Errorf("ClientTransportPlugin %q does not run %s", plugins, SnowflakeClientName)
	}
	// With the network disabled tor starts no transport at all.
	if procs := processTree(d.Pid()); len(procs) > 1 {
		t.Errorf("tor with DisableNetwork runs %v", procs)
	}
}

// TestLastLogLineSkipsRoot: tor's warning about running as root is not
// what a bootstrap failure is reported with.
func TestLastLogLineSkipsRoot(t *testing.T) {
	p := filepath.Join(t.TempDir(), "tor.log")
	log := "Dec 05 13:20:19.000 [warn] Problem bootstrapping. Stuck at 2%\n" +
		"Dec 05 13:20:20.000 [warn] You are running Tor as root. You don't need to, and you probably shouldn't.\n" +
		"Dec 05 13:20:21.000 [notice] Bootstrapped 2% (conn_done_pt): Connected to pluggable transport\n"
	if err := os.WriteFile(p, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := lastLogLine(p, "[warn]", "[err]"); got != "Dec 05 13:20:19.000 [warn] Problem bootstrapping. Stuck at 2%" {
		t.Errorf("lastLogLine = %q", got)
	}
}

// TestTransportBinarySpeaks runs the obfs4 binary found on PATH the way
// tor does (the managed pluggable-transport protocol, pt-spec.txt §3.2)
// and asks for every transport mmogit hands it: the binary itself must
// answer CMETHOD for each, or a meek_lite bridge line would start a tor
// that never connects. webtunnel is asked of FindWebtunnel's binary when
// one is installed (lyrebird; Debian 12's obfs4proxy does not have it).
func TestTransportBinarySpeaks(t *testing.T) {
	bin, err := FindObfs4("")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	cases := []struct {
		bin        string
		transports []string
	}{{bin, []string{TransportObfs4, TransportMeekLite}}}
	if wt, err := FindWebtunnel(""); err == nil {
		cases = append(cases, struct {
			bin        string
			transports []string
		}{wt, []string{TransportWebtunnel}})
	} else {
		t.Logf("webtunnel not checked: %v", err)
	}
	for _, tc := range cases {
		t.Run(filepath.Base(tc.bin), func(t *testing.T) {
			ctx := testCtx(t, 15*time.Second)
			cmd := exec.CommandContext(ctx, tc.bin)
			cmd.Env = append(os.Environ(),
				"TOR_PT_MANAGED_TRANSPORT_VER=1",
				"TOR_PT_STATE_LOCATION="+t.TempDir(),
				"TOR_PT_CLIENT_TRANSPORTS="+strings.Join(tc.transports, ","),
				"TOR_PT_EXIT_ON_STDIN_CLOSE=1")
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
			got := map[string]bool{}
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				t.Logf("%s: %s", filepath.Base(tc.bin), sc.Text())
				if len(f) >= 3 && f[0] == "CMETHOD" && f[2] == "socks5" {
					got[f[1]] = true
				}
				if len(f) > 0 && (f[0] == "CMETHODS" || f[0] == "ENV-ERROR" || f[0] == "VERSION-ERROR") {
					break
				}
			}
			for _, tr := range tc.transports {
				if !got[tr] {
					t.Errorf("%s does not offer %s (offered %v)", tc.bin, tr, got)
				}
			}
		})
	}
}
