package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadCreatesDefaults(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cfg")
	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.Transport != Tor {
		t.Errorf("default transport %q, want tor", c.Transport)
	}
	fi, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("tor.json: %v %v", fi, err)
	}
	c.Transport = Hybrid
	c.HybridTimeout = Duration(5 * time.Second)
	if err := Save(dir, c); err != nil {
		t.Fatal(err)
	}
	c2, err := Load(dir)
	if err != nil || c2.Transport != Hybrid || c2.HybridTimeout.D() != 5*time.Second {
		t.Fatalf("round trip: %+v %v", c2, err)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct{ name, body, want string }{
		{"bad json", "{", "tor.json"},
		{"trailing data", `{} {}`, "after the top-level object"},
		{"not an object", `[1]`, "(top level)"},
		{"bad transport", `{"transport":"carrier-pigeon"}`, `field "transport": unknown transport "carrier-pigeon"`},
		{"bad peer transport", `{"peer_transport":{"abc":"smoke"}}`, `field "peer_transport[abc]"`},
		{"bad duration", `{"hybrid_timeout":"soon"}`, `field "hybrid_timeout": duration "soon"`},
		{"duration wrong type", `{"hybrid_timeout":true}`, `field "hybrid_timeout": duration true`},
		{"zero hybrid timeout", `{"hybrid_timeout":"0s"}`, `field "hybrid_timeout": must be positive`},
		{"negative hybrid timeout", `{"hybrid_timeout":-3}`, `field "hybrid_timeout": must be positive`},
		{"zero ttl", `{"advertisement_ttl":0}`, `field "advertisement_ttl": must be positive`},
		{"short ttl", `{"advertisement_ttl":"10ms"}`, `field "advertisement_ttl"`},
		{"long ttl", `{"advertisement_ttl":"48h"}`, `field "advertisement_ttl": 48h0m0s is longer`},
		{"zero bootstrap timeout", `{"tor":{"bootstrap_timeout":"0s"}}`, `field "tor.bootstrap_timeout": must be positive`},
		{"negative bootstrap timeout", `{"tor":{"bootstrap_timeout":"-1m"}}`, `field "tor.bootstrap_timeout"`},
		{"unknown top-level field", `{"transprot":"tor"}`, `field "transprot": unknown field`},
		{"unknown nested field", `{"tor":{"onion_prot":1}}`, `field "tor.onion_prot": unknown field`},
		{"unknown attach field", `{"tor":{"attach":{"control":"unix:/x","sock":"1"}}}`, `field "tor.attach.sock": unknown field`},
		{"attach without control", `{"tor":{"attach":{"socks":"127.0.0.1:9050"}}}`, `field "tor.attach.control"`},
		{"wrong type", `{"tor":{"onion_port":"7420"}}`, `field "tor.onion_port": want int`},
		{"wrong type list", `{"services":"memory_sync"}`, `field "services": want []string`},
		{"tor not an object", `{"tor":3}`, `field "tor": want a JSON object`},
		{"newline in bridge", `{"tor":{"onion_port":1,"bridges":["obfs4 1.2.3.4:5\nControlPort 1"]}}`, `field "tor.bridges[0]"`},
		{"newline in extra torrc", `{"tor":{"extra_torrc":["Log notice stdout","a\rb"]}}`, `field "tor.extra_torrc[1]"`},
		{"newline in obfs4proxy", `{"tor":{"obfs4proxy":"/x\nControlPort 1"}}`, `field "tor.obfs4proxy"`},
		{"newline in snowflake_client", `{"tor":{"snowflake_client":"/x\nControlPort 1"}}`, `field "tor.snowflake_client"`},
		{"obfs4 bridge without cert", `{"tor":{"bridges":["` + testObfs4 + `","obfs4 192.0.2.1:443 iat-mode=0"]}}`,
			`field "tor.bridges[1]": tor: bad configuration: bridge line "obfs4 192.0.2.1:443 iat-mode=0": obfs4 needs cert=`},
		{"obfs4 bridge without iat-mode", `{"tor":{"bridges":["obfs4 192.0.2.1:443 cert=abc"]}}`, `obfs4 needs iat-mode`},
		{"snowflake bridge without broker", `{"tor":{"bridges":["snowflake 192.0.2.3:80 ` + testFP + ` fingerprint=` + testFP + `"]}}`,
			`field "tor.bridges[0]": tor: bad configuration: bridge line "snowflake 192.0.2.3:80 ` + testFP + ` fingerprint=` + testFP + `": snowflake needs url=`},
		{"unsupported transport", `{"tor":{"bridges":["scramblesuit 192.0.2.1:443 password=x"]}}`, `transport "scramblesuit" is not supported`},
		{"webtunnel over http", `{"tor":{"bridges":["webtunnel 192.0.2.1:443 ` + testFP + ` url=http://x/"]}}`, `field "tor.bridges[0]": tor: bad configuration: bridge line "webtunnel 192.0.2.1:443 ` + testFP + ` url=http://x/": webtunnel url=http://x/ is not an https URL`},
		{"newline in webtunnel_client", `{"tor":{"webtunnel_client":"/x\nControlPort 1"}}`, `field "tor.webtunnel_client"`},
		{"dht records too few", `{"dht":{"max_records":0}}`, `field "dht.max_records": 0 out of range 16..1048576`},
		{"dht providers too many", `{"dht":{"max_providers":2000000}}`, `field "dht.max_providers": 2000000 out of range`},
		{"dht per peer zero", `{"dht":{"max_providers_per_peer":0}}`, `field "dht.max_providers_per_peer"`},
		{"dht unknown field", `{"dht":{"max_record":5}}`, `field "dht.max_record": unknown field`},
		{"timeouts unknown field", `{"timeouts":{"idle":"1m"}}`, `field "timeouts.idle": unknown field`},
		{"timeouts dial zero", `{"timeouts":{"dial":0}}`, `field "timeouts.dial": 0s out of range 1s..1h0m0s`},
		{"timeouts sync_idle bad", `{"timeouts":{"sync_idle":"soon"}}`, `field "timeouts.sync_idle"`},
		{"timeouts sync too long", `{"timeouts":{"sync":"48h"}}`, `field "timeouts.sync": 48h0m0s out of range`},
		{"timeouts connect under dial", `{"timeouts":{"dial":"2m","connect":"1m"}}`, `field "timeouts.connect": 1m0s is shorter than timeouts.dial`},
		{"bad port", `{"tor":{"onion_port":70000}}`, `field "tor.onion_port": 70000 out of range`},
		{"zero port", `{"tor":{"onion_port":0}}`, `field "tor.onion_port"`},
		{"negative max_streams", `{"tor":{"max_streams":-1}}`, `field "tor.max_streams": -1 out of range`},
		{"empty service", `{"services":["memory_sync",""]}`, `field "services[1]"`},
		{"bad authorized client", `{"tor":{"authorized_clients":["` + testClientPub + `","nope"]}}`, `field "tor.authorized_clients[1]": onion: bad client authorization key`},
		{"client auth for a bad address", `{"tor":{"client_auth":{"abc.onion":"` + testClientPriv + `"}}}`, `field "tor.client_auth": a key is not a valid v3 onion address`},
		{"authorized clients in hybrid mode", `{"transport":"hybrid","tor":{"authorized_clients":["` + testClientPub + `"]}}`, `field "tor.authorized_clients": restricts only the onion service`},
		{"authorized clients with a direct override", `{"peer_transport":{"p":"direct"},"tor":{"authorized_clients":["` + testClientPub + `"]}}`, `field "tor.authorized_clients"`},
		{"client auth on a shared tor", `{"tor":{"attach":{"control":"unix:/run/tor/control"},"client_auth":{"` + testOnion + `":"` + testClientPriv + `"}}}`, `field "tor.client_auth": needs the agent's own tor`},
		{"client auth with a public key", `{"tor":{"client_auth":{"` + testOnion + `":"` + testClientPub + `"}}}`, `field "tor.client_auth[` + testOnion + `]": onion: bad client authorization key`},
		{"client auth not a map", `{"tor":{"client_auth":["x"]}}`, `field "tor.client_auth"`},
		{"space in bootstrap", `{"bootstrap":["abc def.onion"]}`, `field "bootstrap[0]"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, FileName), []byte(tt.body), 0o600)
			_, err := Load(dir)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), FileName) {
				t.Fatalf("err = %v, want mention of %q and %s", err, tt.want, FileName)
			}
		})
	}
}

// Client authorization keys for the tests: a fixed x25519 pair (the
// private key is 32 bytes of 0x01, base64; the public key its base32, as
// Python's cryptography computes it) and
// tor's test vector address.
// Bridge lines for the tests.
const (
	testFP        = "2B280B23E1107BB62ABFC40DDCC8824814F80A72"
	testObfs4     = "obfs4 192.0.2.1:443 " + testFP + " cert=ssH+9rP8dG2NLDN2XuFw63hIO/9MNNinLmxQDpVa+7kTOa9/m+tGWT1SmSYpQ9uTBGa6Hw iat-mode=0"
	testSnowflake = "snowflake 192.0.2.3:80 " + testFP + " fingerprint=" + testFP +
		" url=https://1098762253.rsc.cdn77.org/ fronts=www.cdn77.com,www.phpmyadmin.net ice=stun:stun.antisip.com:3478"
)

// TestBridgeSettings: obfs4 and snowflake bridges and both transport
// binaries load from tor.json and save back unchanged.
func TestBridgeSettings(t *testing.T) {
	dir := t.TempDir()
	body := `{"tor":{"use_bridges":true,"bridges":["` + testObfs4 + `","Bridge ` + testSnowflake + `"],` +
		`"obfs4proxy":"/opt/lyrebird","snowflake_client":"/opt/snowflake-client"}}`
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Tor.UseBridges || len(c.Tor.Bridges) != 2 || c.Tor.Obfs4Proxy != "/opt/lyrebird" || c.Tor.SnowflakeClient != "/opt/snowflake-client" {
		t.Fatalf("tor settings = %+v", c.Tor)
	}
	if err := Save(dir, c); err != nil {
		t.Fatal(err)
	}
	c2, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c2.Tor.SnowflakeClient != c.Tor.SnowflakeClient || c2.Tor.Bridges[1] != c.Tor.Bridges[1] {
		t.Fatalf("after save: %+v", c2.Tor)
	}
}

const (
	testClientPriv = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
	testClientPub  = "UTQJFEVWKHBHROLXFRLJ6X5JXMJ5SBVUNK3IZHPZ3QVUICPYUIEQ"
	testOnion      = "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid.onion"
)

// TestClientAuthKeysNotEchoed: a private key in the wrong place (swapped
// with its address, or pasted as an authorized client) is never printed.
func TestClientAuthKeysNotEchoed(t *testing.T) {
	for _, body := range []string{
		`{"tor":{"client_auth":{"` + testClientPriv + `":"` + testOnion + `"}}}`,
		`{"tor":{"authorized_clients":["` + testClientPriv + `"]}}`,
	} {
		_, err := Parse([]byte(body))
		if err == nil || strings.Contains(err.Error(), testClientPriv[:10]) {
			t.Errorf("Parse(%s) = %v: want an error without the key", body, err)
		}
	}
}

// TestClientAuthFileMode: a tor.json holding private keys that others can
// read is refused, as a seed file is.
func TestClientAuthFileMode(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, FileName)
	body := []byte(`{"tor":{"client_auth":{"` + testOnion + `":"` + testClientPriv + `"}}}`)
	if err := os.WriteFile(p, body, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("Load of a 0644 tor.json with client_auth = %v", err)
	}
	os.Chmod(p, 0o600)
	if _, err := Load(dir); err != nil {
		t.Fatal(err)
	}
}

func TestClientAuthFields(t *testing.T) {
	c, err := Parse([]byte(`{"tor":{"authorized_clients":["descriptor:x25519:` + testClientPub + `"],"client_auth":{"` + testOnion + `":"x25519:` + testClientPriv + `"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Tor.AuthorizedClients) != 1 || c.Tor.ClientAuth[testOnion] == "" {
		t.Fatalf("Parse = %+v", c.Tor)
	}
}

// TestAdvertiseRestricted: an agent with authorized_clients does not
// advertise unless tor.advertise_restricted says so; one without always
// does.
func TestAdvertiseRestricted(t *testing.T) {
	for _, tc := range []struct {
		json string
		want bool
	}{
		{`{}`, true},
		{`{"tor":{"advertise_restricted":true}}`, true},
		{`{"tor":{"authorized_clients":["` + testClientPub + `"]}}`, false},
		{`{"tor":{"authorized_clients":["` + testClientPub + `"],"advertise_restricted":false}}`, false},
		{`{"tor":{"authorized_clients":["` + testClientPub + `"],"advertise_restricted":true}}`, true},
	} {
		c, err := Parse([]byte(tc.json))
		if err != nil {
			t.Fatalf("%s: %v", tc.json, err)
		}
		if got := c.Advertises(); got != tc.want {
			t.Errorf("%s: Advertises() = %v, want %v", tc.json, got, tc.want)
		}
	}
	if Default().Tor.AdvertiseRestricted {
		t.Error("advertise_restricted is on by default")
	}
	if _, err := Parse([]byte(`{"tor":{"advertise_restricted":"yes"}}`)); err == nil {
		t.Error("advertise_restricted accepts a string")
	}
}

// TestLoadKeepsDefaults: fields left out keep their defaults, null keeps
// them too, and a file written by Save loads back unchanged.
func TestLoadKeepsDefaults(t *testing.T) {
	c, err := Parse([]byte(`{"transport":"hybrid","tor":{"pow":false,"attach":null}}`))
	if err != nil {
		t.Fatal(err)
	}
	d := Default()
	if c.Transport != Hybrid || c.Tor.PoW || c.Tor.OnionPort != d.Tor.OnionPort || c.HybridTimeout != d.HybridTimeout || c.Tor.Attach != nil {
		t.Fatalf("Parse = %+v", c)
	}
	c, err = Parse([]byte(`{"tor":{"attach":{"control":"unix:/run/tor/control"}},"peer_transport":{"p":"direct"},"advertisement_ttl":90}`))
	if err != nil || c.Tor.Attach == nil || c.Tor.Attach.Control != "unix:/run/tor/control" || c.PeerTransport["p"] != Direct || c.AdvertisementTTL.D() != 90*time.Second {
		t.Fatalf("Parse = %+v, %v", c, err)
	}
	// A tor.json written before the dht section existed, or naming one
	// of its fields, keeps the other defaults.
	c2, err := Parse([]byte(`{"dht":{"max_records":100}}`))
	if err != nil || c2.DHT.MaxRecords != 100 || c2.DHT.MaxProviders != d.DHT.MaxProviders || c2.DHT.MaxProvidersPerPeer != d.DHT.MaxProvidersPerPeer {
		t.Fatalf("partial dht section: %+v, %v", c2.DHT, err)
	}
	// Likewise a partial timeouts section; the defaults suit the public
	// network.
	c3, err := Parse([]byte(`{"timeouts":{"sync_idle":"90s"}}`))
	want := TimeoutSettings{Dial: Duration(time.Minute), Connect: Duration(3 * time.Minute), SyncIdle: Duration(90 * time.Second), Sync: Duration(30 * time.Minute)}
	if err != nil || c3.Timeouts != want {
		t.Fatalf("partial timeouts section: %+v, %v", c3.Timeouts, err)
	}
	dir := t.TempDir()
	if err := Save(dir, c); err != nil {
		t.Fatal(err)
	}
	back, err := Load(dir)
	if err != nil || back.Tor.Attach.Control != c.Tor.Attach.Control || back.AdvertisementTTL != c.AdvertisementTTL {
		t.Fatalf("round trip %+v, %v", back, err)
	}
	bad := Default()
	bad.Tor.BootstrapTimeout = 0
	if err := Save(dir, bad); err == nil || !strings.Contains(err.Error(), `"tor.bootstrap_timeout"`) {
		t.Fatalf("Save of an invalid config: %v", err)
	}
}

func TestDurationSeconds(t *testing.T) {
	var d Duration
	if err := d.UnmarshalJSON([]byte("2.5")); err != nil || d.D() != 2500*time.Millisecond {
		t.Fatalf("%v %v", d, err)
	}
}
