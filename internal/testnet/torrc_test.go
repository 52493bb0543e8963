package testnet

import (
	"bufio"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestVotingStartOffset(t *testing.T) {
	tests := []struct {
		launch     time.Time
		offset     int
		validAfter time.Time
	}{
		// 2026-01-01T00:00:00Z is 1767225600, a multiple of 6.
		{time.Unix(1767225600, 0), 0, time.Unix(1767225606, 0)},
		{time.Unix(1767225600, 999e6), 0, time.Unix(1767225606, 0)},
		{time.Unix(1767225601, 0), 1, time.Unix(1767225607, 0)},
		{time.Unix(1767225605, 500e6), 5, time.Unix(1767225611, 0)},
		{time.Unix(1767225606, 1), 0, time.Unix(1767225612, 0)},
	}
	for _, tc := range tests {
		off, va := votingStartOffset(tc.launch)
		if off != tc.offset || !va.Equal(tc.validAfter) {
			t.Errorf("votingStartOffset(%v) = %d, %v; want %d, %v", tc.launch, off, va, tc.offset, tc.validAfter)
		}
		if lead := va.Sub(tc.launch); lead <= 5*time.Second || lead > 6*time.Second {
			t.Errorf("lead %v not in (5s, 6s]", lead)
		}
		if off < 0 || off > initialVotingInterval {
			t.Errorf("offset %d outside [0, %d], tor would refuse it", off, initialVotingInterval)
		}
	}
}

var testAuths = []authority{
	{"auth0", 5000, 5001, strings.Repeat("A", 40), strings.Repeat("B", 40)},
	{"auth1", 5002, 5003, strings.Repeat("C", 40), strings.Repeat("D", 40)},
	{"auth2", 5004, 5005, strings.Repeat("E", 40), strings.Repeat("F", 40)},
}

func TestDirAuthorityLine(t *testing.T) {
	got := dirAuthorityLine(testAuths[0])
	want := "DirAuthority auth0 orport=5000 v3ident=" + strings.Repeat("A", 40) + " 127.0.0.1:5001 " + strings.Repeat("B", 40)
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestTorrcByRole(t *testing.T) {
	base := nodeConfig{nick: "n", dataDir: "/d/n", auths: testAuths, geoIP: "/d/geoip", geoIPv6: "/d/geoip6",
		orPort: 6000, dirPort: 6001, ptPort: 6002, ptPath: "/usr/bin/obfs4proxy", votingStart: 3, ownerPID: 42}
	tests := []struct {
		role    role
		want    []string
		notWant []string
	}{
		{roleAuthority,
			[]string{"DirPort 127.0.0.1:6001", "ORPort 127.0.0.1:6000", "TestingV3AuthVotingStartOffset 3",
				"AuthDirVoteStableGuaranteeMinUptime 0", "AuthDirVoteStableGuaranteeMTBF 0", "V3AuthVotingInterval 10",
				"ExitRelay 1", "__OwningControllerProcess 42", "PathsNeededToBuildCircuits 0.67"},
			[]string{"UseEntryGuards 0", "BridgeRelay 1"}},
		{roleRelay,
			[]string{"ORPort 127.0.0.1:6000", "AssumeReachable 1", "ExitPolicy accept *:*", "SocksPort 0"},
			[]string{"DirPort 127.0.0.1:6001", "AuthoritativeDirectory 1", "UseEntryGuards 0"}},
		{roleBridge,
			[]string{"BridgeRelay 1", "PublishServerDescriptor 0", "ExitRelay 0",
				"ServerTransportPlugin obfs4 exec /usr/bin/obfs4proxy", "ServerTransportListenAddr obfs4 127.0.0.1:6002"},
			[]string{"ExitRelay 1", "AuthoritativeDirectory 1"}},
		{roleClient,
			[]string{"SocksPort auto ExtendedErrors", "UseEntryGuards 0", "FetchDirInfoEarly 1", "FetchDirInfoExtraEarly 1"},
			[]string{"ORPort 127.0.0.1:6000", "SocksPort 0"}},
	}
	for _, tc := range tests {
		t.Run(tc.role.String(), func(t *testing.T) {
			c := base
			c.role = tc.role
			lines := c.torrc()
			common := []string{"TestingTorNetwork 1", dirAuthorityLine(testAuths[2]), "DataDirectory /d/n",
				"CookieAuthentication 1", "GeoIPFile /d/geoip", "ShutdownWaitLength 0", "ControlPort auto"}
			for _, w := range append(common, tc.want...) {
				if !slices.Contains(lines, w) {
					t.Errorf("missing %q", w)
				}
			}
			for _, nw := range tc.notWant {
				if slices.Contains(lines, nw) {
					t.Errorf("unexpected %q", nw)
				}
			}
		})
	}
	detached := base
	detached.ownerPID = 0
	for _, l := range detached.torrc() {
		if strings.HasPrefix(l, "__OwningControllerProcess") {
			t.Errorf("detached node has %q", l)
		}
	}
}

func TestClientTorrc(t *testing.T) {
	got := clientTorrc(testAuths, "/g4", "/g6")
	want := []string{"TestingTorNetwork 1", dirAuthorityLine(testAuths[0]), dirAuthorityLine(testAuths[1]),
		dirAuthorityLine(testAuths[2]), "UseEntryGuards 0", "FetchDirInfoEarly 1", "FetchDirInfoExtraEarly 1",
		"PathsNeededToBuildCircuits 0.67", "GeoIPFile /g4", "GeoIPv6File /g6"}
	if !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	b := bridgeClientTorrc(got, "/bin/obfs4", "obfs4 127.0.0.1:1 FP cert=x iat-mode=0")
	if slices.Contains(b, "UseEntryGuards 0") {
		t.Error("bridge client must keep entry guards")
	}
	for _, w := range []string{"UseBridges 1", "ClientTransportPlugin obfs4 exec /bin/obfs4", "Bridge obfs4 127.0.0.1:1 FP cert=x iat-mode=0"} {
		if !slices.Contains(b, w) {
			t.Errorf("bridge client torrc misses %q", w)
		}
	}
}

func TestParseBridgeLine(t *testing.T) {
	// As written by obfs4proxy 0.0.14 into pt_state/obfs4_bridgeline.txt.
	const file = `# obfs4 torrc client bridge line
#
# This file is an automatically generated bridge line based on
# the current obfs4proxy configuration.  EDITING IT WILL HAVE NO
# EFFECT.
#
# Before distributing this Bridge, edit the placeholder fields
# to contain the actual values:
#  <IP ADDRESS>  - The public IP address of your obfs4 bridge.
#  <PORT>        - The TCP/IP port of your obfs4 bridge.
#  <FINGERPRINT> - The bridge's fingerprint.

Bridge obfs4 <IP ADDRESS>:<PORT> <FINGERPRINT> cert=ssH+9rP8dG2NLDN2XuFw63hIO/9MNNinLmxQDpVa+7kTOa9/m+tGWT1SmSYpQ9uTBGa6Hw iat-mode=0
`
	tests := []struct {
		file    string
		want    string
		wantErr bool
	}{
		{file, "obfs4 127.0.0.1:7000 " + strings.Repeat("A", 40) +
			" cert=ssH+9rP8dG2NLDN2XuFw63hIO/9MNNinLmxQDpVa+7kTOa9/m+tGWT1SmSYpQ9uTBGa6Hw iat-mode=0", false},
		{"", "", true},
		{"Bridge obfs4 <IP ADDRESS>:<PORT> <FINGERPRINT> iat-mode=0\n", "", true},
	}
	for _, tc := range tests {
		got, err := parseBridgeLine(tc.file, 7000, strings.Repeat("A", 40))
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("parseBridgeLine = %q, %v; want %q, err %v", got, err, tc.want, tc.wantErr)
		}
	}
}

func TestReadReply(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr error
	}{
		{"250 OK\r\n", []string{"OK"}, nil},
		{"250-ServiceID=abc\r\n250-PrivateKey=ED25519-V3:xyz\r\n250 OK\r\n",
			[]string{"ServiceID=abc", "PrivateKey=ED25519-V3:xyz", "OK"}, nil},
		{"250+config-text=\r\nSocksPort 0\r\n..dot\r\n.\r\n250 OK\r\n",
			[]string{"config-text=\nSocksPort 0\n.dot", "OK"}, nil},
		{"515 Authentication failed: Wrong length on authentication cookie.\r\n", nil,
			&ControlError{515, "Authentication failed: Wrong length on authentication cookie."}},
	}
	for _, tc := range tests {
		got, err := readReply(bufio.NewReader(strings.NewReader(tc.in)))
		if !slices.Equal(got, tc.want) {
			t.Errorf("readReply(%q) = %q, want %q", tc.in, got, tc.want)
		}
		var ce *ControlError
		if tc.wantErr != nil && (!errors.As(err, &ce) || *ce != *tc.wantErr.(*ControlError)) {
			t.Errorf("readReply(%q) err = %v, want %v", tc.in, err, tc.wantErr)
		}
		if tc.wantErr == nil && err != nil {
			t.Errorf("readReply(%q) err = %v", tc.in, err)
		}
	}
}

func TestBootstrapProgress(t *testing.T) {
	tests := []struct {
		in       string
		progress int
		summary  string
	}{
		{`NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"`, 100, "Done"},
		{`NOTICE BOOTSTRAP PROGRESS=75 TAG=enough_dirinfo SUMMARY="Loaded enough directory info to build circuits"`,
			75, "Loaded enough directory info to build circuits"},
		{`WARN BOOTSTRAP PROGRESS=5 TAG=conn SUMMARY="Connecting to a relay" WARNING="Connection refused" REASON=CONNECTREFUSED COUNT=1 RECOMMENDATION=ignore`,
			5, "Connecting to a relay"},
		{"garbage", -1, ""},
	}
	for _, tc := range tests {
		p, s := bootstrapProgress(tc.in)
		if p != tc.progress || s != tc.summary {
			t.Errorf("bootstrapProgress(%q) = %d, %q; want %d, %q", tc.in, p, s, tc.progress, tc.summary)
		}
	}
}

func TestParseCertificate(t *testing.T) {
	// Head of a certificate written by tor-gencert 0.4.9.11.
	const cert = "dir-key-certificate-version 3\ndir-address 127.0.0.1:1\n" +
		"fingerprint FED4DA1DE6A5058B1F8C8AA90678E063FEEBC1FF\n" +
		"dir-key-published 2026-11-25 10:44:52\ndir-key-expires 2027-11-25 10:44:52\n"
	v3, exp, err := parseCertificate([]byte(cert))
	if err != nil {
		t.Fatal(err)
	}
	if v3 != "FED4DA1DE6A5058B1F8C8AA90678E063FEEBC1FF" || !exp.Equal(time.Date(2027, 11, 25, 10, 44, 52, 0, time.UTC)) {
		t.Errorf("parseCertificate = %s, %v", v3, exp)
	}
	if _, _, err := parseCertificate([]byte("dir-key-certificate-version 3\n")); err == nil {
		t.Error("parseCertificate accepted a certificate without fingerprint")
	}
}

func TestReadControlPortFile(t *testing.T) {
	p := t.TempDir() + "/control-port"
	writeFile(t, p, "PORT=127.0.0.1:39123\n")
	if got, err := readControlPortFile(p); err != nil || got != "127.0.0.1:39123" {
		t.Errorf("readControlPortFile = %q, %v", got, err)
	}
}
