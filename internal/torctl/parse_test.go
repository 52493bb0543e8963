package torctl

import (
	"encoding/hex"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestParseReply(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want *Reply
		err  error
	}{
		{
			// control-spec §3.21 example of a PROTOCOLINFO reply.
			name: "protocolinfo",
			in: "250-PROTOCOLINFO 1\r\n" +
				"250-AUTH METHODS=COOKIE COOKIEFILE=\"/tor/cookie\"\r\n" +
				"250-VERSION Tor=\"0.2.0.5-alpha\"\r\n" +
				"250 OK\r\n",
			want: &Reply{Code: 250, Lines: []ReplyLine{
				{Text: "PROTOCOLINFO 1"},
				{Text: `AUTH METHODS=COOKIE COOKIEFILE="/tor/cookie"`},
				{Text: `VERSION Tor="0.2.0.5-alpha"`},
				{Text: "OK"},
			}},
		},
		{
			// control-spec §3.9 GETINFO example with a data block:
			// "250+desc/name/moria=" ... "." ... "250 OK".
			name: "data block with dot-stuffing",
			in: "250-version=Tor 0.1.1.0-alpha-cvs\r\n" +
				"250+config-text=\r\n" +
				"SocksPort 9050\r\n" +
				"..starts with a dot\r\n" +
				"\r\n" +
				".\r\n" +
				"250 OK\r\n",
			want: &Reply{Code: 250, Lines: []ReplyLine{
				{Text: "version=Tor 0.1.1.0-alpha-cvs"},
				{Text: "config-text=", Data: "SocksPort 9050\n.starts with a dot\n", HasData: true},
				{Text: "OK"},
			}},
		},
		{
			name: "async event",
			in:   "650 STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY=\"Done\"\r\n",
			want: &Reply{Code: 650, Lines: []ReplyLine{{Text: `STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"`}}},
		},
		{
			name: "bare LF and empty end text",
			in:   "250 \n",
			want: &Reply{Code: 250, Lines: []ReplyLine{{Text: ""}}},
		},
		{
			name: "error reply",
			in:   "552 Unrecognized key \"nope\"\r\n",
			want: &Reply{Code: 552, Lines: []ReplyLine{{Text: `Unrecognized key "nope"`}}},
		},
		{name: "empty input", in: "", err: io.EOF},
		{name: "cut after mid line", in: "250-a=b\r\n", err: io.ErrUnexpectedEOF},
		{name: "cut inside data", in: "250+a=\r\nx\r\n", err: io.ErrUnexpectedEOF},
		{name: "code changes", in: "250-a\r\n550 b\r\n", err: ErrMalformed},
		{name: "bad code", in: "2x0 OK\r\n", err: ErrMalformed},
		{name: "bad separator", in: "250*OK\r\n", err: ErrMalformed},
		{name: "short line", in: "250\r\n", err: ErrMalformed},
		{name: "trailing data", in: "250 OK\r\n250 OK\r\n", err: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseReply([]byte(tt.in))
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestUnquote(t *testing.T) {
	tests := []struct {
		in, val, rest string
		bad           bool
	}{
		{in: `"Done"`, val: "Done"},
		{in: `"/var/lib/tor/control_auth_cookie" X=1`, val: "/var/lib/tor/control_auth_cookie", rest: " X=1"},
		{in: `"a \"quoted\" \\ word"`, val: `a "quoted" \ word`},
		{in: `"tab\tnl\ncr\r"`, val: "tab\tnl\ncr\r"},
		{in: `"octal \101\60x"`, val: "octal A0x"},
		{in: `""`, val: ""},
		{in: `"unterminated`, bad: true},
		{in: `"esc at end\`, bad: true},
		{in: `"\777"`, bad: true},
		{in: `noquote`, bad: true},
	}
	for _, tt := range tests {
		v, rest, err := Unquote(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("Unquote(%q) = %q, want error", tt.in, v)
			}
			continue
		}
		if err != nil || v != tt.val || rest != tt.rest {
			t.Errorf("Unquote(%q) = %q, %q, %v; want %q, %q", tt.in, v, rest, err, tt.val, tt.rest)
		}
	}
}

func TestQuoteRoundTrip(t *testing.T) {
	for _, s := range []string{"", "plain", `with "quotes" and \back\slashes`, "spaces and = signs"} {
		q, err := Quote(s)
		if err != nil {
			t.Fatal(err)
		}
		v, rest, err := Unquote(q)
		if err != nil || v != s || rest != "" {
			t.Errorf("round trip %q: %q %q %v", s, v, rest, err)
		}
	}
	for _, s := range []string{"a\r\nSIGNAL HALT", "x\n", "nul\x00"} {
		if _, err := Quote(s); !errors.Is(err, ErrBadArgument) {
			t.Errorf("Quote(%q) err = %v, want ErrBadArgument", s, err)
		}
	}
}

func TestParseArgs(t *testing.T) {
	tests := []struct {
		in   string
		want []Arg
		bad  bool
	}{
		{
			in: `AUTH METHODS=COOKIE,SAFECOOKIE COOKIEFILE="/run/tor/control.authcookie"`,
			want: []Arg{{Key: "AUTH"}, {Key: "METHODS", Value: "COOKIE,SAFECOOKIE", HasValue: true},
				{Key: "COOKIEFILE", Value: "/run/tor/control.authcookie", HasValue: true}},
		},
		{
			in: `NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"`,
			want: []Arg{{Key: "NOTICE"}, {Key: "BOOTSTRAP"}, {Key: "PROGRESS", Value: "100", HasValue: true},
				{Key: "TAG", Value: "done", HasValue: true}, {Key: "SUMMARY", Value: "Done", HasValue: true}},
		},
		{in: "  A  B=  ", want: []Arg{{Key: "A"}, {Key: "B", Value: "", HasValue: true}}},
		{in: "", want: nil},
		{in: `=x`, bad: true},
		{in: `K="unterminated`, bad: true},
		{in: `K="v"junk`, bad: true},
	}
	for _, tt := range tests {
		got, err := ParseArgs(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("ParseArgs(%q) = %+v, want error", tt.in, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseArgs(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseBootstrapStatus(t *testing.T) {
	tests := []struct {
		in   string
		want BootstrapStatus
		bad  bool
	}{
		{
			in:   `NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"`,
			want: BootstrapStatus{Severity: "NOTICE", Progress: 100, Tag: "done", Summary: "Done"},
		},
		{
			// control-spec §5.6 example shape of a warning.
			in: `WARN BOOTSTRAP PROGRESS=5 TAG=conn SUMMARY="Connecting to a relay" WARNING="Connection refused" REASON=CONNECTREFUSED COUNT=3 RECOMMENDATION=warn HOSTID="X" HOSTADDR="127.0.0.1:1"`,
			want: BootstrapStatus{Severity: "WARN", Progress: 5, Tag: "conn", Summary: "Connecting to a relay",
				Warning: "Connection refused", Reason: "CONNECTREFUSED"},
		},
		{in: `NOTICE BOOTSTRAP PROGRESS=101 TAG=x`, bad: true},
		{in: `NOTICE CIRCUIT_ESTABLISHED`, bad: true},
		{in: `NOTICE BOOTSTRAP TAG=x`, bad: true},
	}
	for _, tt := range tests {
		got, err := ParseBootstrapStatus(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("ParseBootstrapStatus(%q) = %+v, want error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseBootstrapStatus(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseHSDesc(t *testing.T) {
	ev := Event{Name: "HS_DESC", Text: "UPLOADED 25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid UNKNOWN $ABCD~relay"}
	d, err := ParseHSDesc(ev)
	if err != nil || d.Action != "UPLOADED" || d.Address != "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid" || d.HSDir != "$ABCD~relay" {
		t.Fatalf("got %+v, %v", d, err)
	}
	ev.Text = `FAILED x NO_AUTH $AB REASON=UPLOAD_REJECTED`
	if d, err = ParseHSDesc(ev); err != nil || d.Reason != "UPLOAD_REJECTED" {
		t.Fatalf("got %+v, %v", d, err)
	}
}

// RFC 8032 §7.1 TEST 1 seed; rend-spec-v3 / tor's test vector gives its
// onion address 25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid.
const rfc8032Seed1 = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"

func TestExpandedKey(t *testing.T) {
	seed, _ := hex.DecodeString(rfc8032Seed1)
	k, err := ExpandedKey(seed)
	if err != nil {
		t.Fatal(err)
	}
	// SHA-512(seed) starts 357c83864f2833cb...; clamping clears the low
	// three bits of byte 0 (0x35 -> 0x30).
	if got := hex.EncodeToString(k[:4]); got != "307c8386" {
		t.Fatalf("expanded key starts %s, want 307c8386", got)
	}
	if k[31]&0x80 != 0 || k[31]&0x40 == 0 {
		t.Fatalf("byte 31 not clamped: %#x", k[31])
	}
	if _, err := ExpandedKey(seed[:31]); err == nil {
		t.Fatal("31-byte seed accepted")
	}
}

func TestBuildAddOnion(t *testing.T) {
	key := make([]byte, 64)
	pub := strings.Repeat("A", 52)
	tests := []struct {
		name string
		req  AddOnionRequest
		want string
		err  bool
	}{
		{
			name: "new key",
			req:  AddOnionRequest{Ports: []PortMapping{{Virtual: 80}}},
			want: "ADD_ONION NEW:ED25519-V3 Port=80",
		},
		{
			name: "everything",
			req: AddOnionRequest{
				Key:          key,
				Ports:        []PortMapping{{Virtual: 4001, Target: "127.0.0.1:39123"}, {Virtual: 80, Target: "unix:/run/x.sock"}},
				Flags:        []OnionFlag{FlagDiscardPK, FlagMaxStreamsCloseCircuit},
				MaxStreams:   16,
				ClientAuthV3: []string{pub},
				PoW:          &PoWParams{QueueRate: 250, QueueBurst: 2500},
			},
			want: "ADD_ONION ED25519-V3:" + strings.Repeat("A", 86) + "==" +
				" Flags=DiscardPK,MaxStreamsCloseCircuit,V3Auth MaxStreams=16" +
				" PoWDefensesEnabled=1 PoWQueueRate=250 PoWQueueBurst=2500" +
				" Port=4001,127.0.0.1:39123 Port=80,unix:/run/x.sock ClientAuthV3=" + pub,
		},
		{name: "no ports", req: AddOnionRequest{}, err: true},
		{name: "port 0", req: AddOnionRequest{Ports: []PortMapping{{Virtual: 0}}}, err: true},
		{name: "short key", req: AddOnionRequest{Key: key[:32], Ports: []PortMapping{{Virtual: 80}}}, err: true},
		{name: "unknown flag", req: AddOnionRequest{Flags: []OnionFlag{"Evil"}, Ports: []PortMapping{{Virtual: 80}}}, err: true},
		{name: "injected target", req: AddOnionRequest{Ports: []PortMapping{{Virtual: 80, Target: "127.0.0.1:1\r\nSIGNAL HALT"}}}, err: true},
		{name: "target with space", req: AddOnionRequest{Ports: []PortMapping{{Virtual: 80, Target: "a b"}}}, err: true},
		{name: "bad client key", req: AddOnionRequest{Ports: []PortMapping{{Virtual: 80}}, ClientAuthV3: []string{"x y"}}, err: true},
		{name: "negative max streams", req: AddOnionRequest{Ports: []PortMapping{{Virtual: 80}}, MaxStreams: -1}, err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := buildAddOnion(tt.req)
			if tt.err {
				if !errors.Is(err, ErrBadArgument) {
					t.Fatalf("got %q, %v; want ErrBadArgument", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got  %q, %v\nwant %q", got, err, tt.want)
			}
		})
	}
}

func TestBuildSetConf(t *testing.T) {
	got, err := buildSetConf("SETCONF", []KeyValue{{"SocksPort", "auto ExtendedErrors"}, {"ContactInfo", `a "b"`}})
	want := `SETCONF SocksPort="auto ExtendedErrors" ContactInfo="a \"b\""`
	if err != nil || got != want {
		t.Fatalf("got %q, %v; want %q", got, err, want)
	}
	for _, bad := range [][]KeyValue{
		nil,
		{{"Key With Space", "x"}},
		{{"K=V", "x"}},
		{{"Log", "notice\r\nSIGNAL HALT"}},
	} {
		if _, err := buildSetConf("SETCONF", bad); !errors.Is(err, ErrBadArgument) {
			t.Errorf("buildSetConf(%q) err = %v", bad, err)
		}
	}
}

func TestBuildClientAuthAdd(t *testing.T) {
	id := "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid"
	priv := "yPGUxgKaC5ACyEzsdANHJEJzt5DIqDRBlAFaAWWQn0o="
	got, err := buildClientAuthAdd(id+".onion", priv, []string{"Permanent"})
	want := "ONION_CLIENT_AUTH_ADD " + id + " x25519:" + priv + " Flags=Permanent"
	if err != nil || got != want {
		t.Fatalf("got %q, %v; want %q", got, err, want)
	}
	for _, c := range []struct{ addr, key string }{
		{id[:55], priv},
		{id, "not base64!"},
		{id, "AAAA"},
		{strings.ToUpper(id[:55]) + "1", priv},
	} {
		if _, err := buildClientAuthAdd(c.addr, c.key, nil); !errors.Is(err, ErrBadArgument) {
			t.Errorf("buildClientAuthAdd(%q, %q) err = %v", c.addr, c.key, err)
		}
	}
}

func TestParseGetInfo(t *testing.T) {
	r, err := ParseReply([]byte("250-version=0.4.9.11\r\n250+config-text=\r\nA 1\r\nB 2\r\n.\r\n250-net/listeners/socks=\"127.0.0.1:39001\"\r\n250 OK\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := parseGetInfo(r)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"version": "0.4.9.11", "config-text": "A 1\nB 2", "net/listeners/socks": "127.0.0.1:39001"}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("got %q want %q", m, want)
	}
}

func TestParseProtocolInfo(t *testing.T) {
	r, _ := ParseReply([]byte("250-PROTOCOLINFO 1\r\n250-AUTH METHODS=COOKIE,SAFECOOKIE COOKIEFILE=\"/tmp/x y/control_auth_cookie\"\r\n250-VERSION Tor=\"0.4.9.11\"\r\n250 OK\r\n"))
	pi, err := parseProtocolInfo(r)
	if err != nil {
		t.Fatal(err)
	}
	want := &ProtocolInfo{AuthMethods: []string{"COOKIE", "SAFECOOKIE"}, CookieFile: "/tmp/x y/control_auth_cookie", TorVersion: "0.4.9.11"}
	if !reflect.DeepEqual(pi, want) {
		t.Fatalf("got %+v want %+v", pi, want)
	}
}

func FuzzParseReply(f *testing.F) {
	for _, s := range []string{
		"250 OK\r\n",
		"250-PROTOCOLINFO 1\r\n250-AUTH METHODS=NULL\r\n250 OK\r\n",
		"250+a=\r\n..x\r\n.\r\n250 OK\r\n",
		"650 HS_DESC UPLOADED abc UNKNOWN $X\r\n",
		"552 Unrecognized key\r\n",
		// Replies that reach the command parsers below.
		"250-PROTOCOLINFO 1\r\n250-AUTH METHODS=COOKIE,SAFECOOKIE COOKIEFILE=\"/tmp/a \\\"b\\\"/control_auth_cookie\"\r\n250-VERSION Tor=\"0.4.9.11\"\r\n250 OK\r\n",
		"250 AUTHCHALLENGE SERVERHASH=" + strings.Repeat("ab", 32) + " SERVERNONCE=" + strings.Repeat("cd", 32) + "\r\n",
		"250-ServiceID=25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid\r\n250-PrivateKey=ED25519-V3:AAAA\r\n250-ClientAuthV3=x\r\n250 OK\r\n",
		"650 HS_DESC FAILED 25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid NO_AUTH $AB~r REASON=UPLOAD_REJECTED\r\n",
		"650 STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=50 TAG=loading_descriptors SUMMARY=\"Loading relay descriptors\"\r\n",
		"650+HS_DESC_CONTENT x y z\r\ndescriptor\r\n.\r\n650 OK\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseReply(b)
		if err != nil {
			return
		}
		if len(r.Lines) == 0 || r.Code < 0 || r.Code > 999 {
			t.Fatalf("accepted reply without lines or bad code: %+v", r)
		}
		for _, l := range r.Lines {
			// Parsing the parts must not panic either.
			ParseArgs(l.Text)
			parseLineValue(l.Text)
			ParseBootstrapStatus(l.Text)
			if h, n, err := parseAuthChallenge(l.Text); err == nil && (len(h) != 32 || len(n) != 32) {
				t.Fatalf("parseAuthChallenge(%q) accepted %d/%d-byte hash/nonce", l.Text, len(h), len(n))
			}
		}
		// The reply as each command's parser sees it.
		if pi, err := parseProtocolInfo(r); err == nil && len(pi.AuthMethods) == 0 {
			t.Fatalf("parseProtocolInfo accepted a reply without methods: %+v", pi)
		}
		if res, err := parseAddOnion(r); err == nil {
			if id, err := checkServiceID(res.ServiceID); err != nil || id != res.ServiceID {
				t.Fatalf("parseAddOnion accepted ServiceID %q", res.ServiceID)
			}
		}
		// And as an event, the way the reader goroutine delivers it.
		ev := eventOf(r)
		if d, err := ParseHSDesc(ev); err == nil && (d.Action == "" || d.Address == "") {
			t.Fatalf("ParseHSDesc accepted %+v", d)
		}
		if st, ok, err := BootstrapFromEvent(ev); ok && (err != nil || st.Progress < 0 || st.Progress > 100) {
			t.Fatalf("BootstrapFromEvent = %+v, %v, %v", st, ok, err)
		}
	})
}

func TestParseAddOnion(t *testing.T) {
	const id = "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid"
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"250-ServiceID=" + id + "\r\n250-PrivateKey=ED25519-V3:AAAA\r\n250 OK\r\n", true},
		{"250-PrivateKey=ED25519-V3:AAAA\r\n250 OK\r\n", false},
		{"250-ServiceID=abc\r\n250 OK\r\n", false},
		{"250-ServiceID=" + strings.ToUpper(id) + "\r\n250 OK\r\n", false},
		{"250-ServiceID=" + id + ".onion\r\n250 OK\r\n", false},
	} {
		r, err := ParseReply([]byte(tc.in))
		if err != nil {
			t.Fatal(err)
		}
		res, err := parseAddOnion(r)
		if (err == nil) != tc.ok || tc.ok && (res.ServiceID != id || res.PrivateKey != "ED25519-V3:AAAA") {
			t.Errorf("parseAddOnion(%q) = %+v, %v", tc.in, res, err)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Errorf("parseAddOnion(%q) error %v is not ErrMalformed", tc.in, err)
		}
	}
}
