package testnet

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// shaperHelperEnv makes this test binary act as `mmogit testnet shape`
// (see runShaperHelper), so that the detached shaper process is tested
// without the mmogit binary.
const shaperHelperEnv = "MMOGIT_TESTNET_SHAPER_HELPER"

// runShaperHelper is called from TestMain before flag parsing: in the
// child started through Options.ShaperCommand it serves the shapers and
// exits.
func runShaperHelper() {
	if os.Getenv(shaperHelperEnv) != "1" {
		return
	}
	i := slices.Index(os.Args, "--config")
	if i < 0 || i+1 >= len(os.Args) {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := RunShaper(ctx, os.Args[i+1], nil); err != nil {
		println("shaper:", err.Error())
		os.Exit(1)
	}
	os.Exit(0)
}

func TestParseProfile(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Profile
		err  bool
	}{
		{"", ProfileLoopback, false},
		{"loopback", ProfileLoopback, false},
		{"public", ProfilePublic, false},
		{"slow", ProfileSlow, false},
		{"Public", "", true},
		{"lan", "", true},
	} {
		got, err := ParseProfile(tc.in)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("ParseProfile(%q) = %q, %v", tc.in, got, err)
		}
		if err != nil && (!errors.Is(err, ErrUnknownProfile) || !strings.Contains(err.Error(), tc.in)) {
			t.Errorf("ParseProfile(%q) error %v does not name the input", tc.in, err)
		}
	}
	for _, p := range Profiles {
		if err := p.Link().Validate(); err != nil {
			t.Errorf("%s: %v", p, err)
		}
		if p.Shaped() != (p.Link().Latency > 0) {
			t.Errorf("%s: Shaped() = %v with latency %v", p, p.Shaped(), p.Link().Latency)
		}
	}
	if s := ProfileSlow.Link(); s.Latency != ProfilePublic.Link().Latency || s.Rate >= ProfilePublic.Link().Rate {
		t.Errorf("slow %+v should have public's latency and a lower rate than %+v", s, ProfilePublic.Link())
	}
}

// TestTorrcShaped: a shaped node listens on its private ORPort without
// advertising it and advertises the shaper's port without listening.
func TestTorrcShaped(t *testing.T) {
	c := nodeConfig{role: roleRelay, nick: "r", dataDir: "/d/r", orPort: 6000, shapedPort: 7000}
	lines := c.torrc()
	for _, w := range []string{"ORPort 127.0.0.1:6000 NoAdvertise", "ORPort 127.0.0.1:7000 NoListen"} {
		if !slices.Contains(lines, w) {
			t.Errorf("missing %q in %q", w, lines)
		}
	}
	if slices.Contains(lines, "ORPort 127.0.0.1:6000") {
		t.Error("shaped node also has a plain ORPort line")
	}
	if got := c.advertisedORPort(); got != 7000 {
		t.Errorf("advertisedORPort = %d, want the shaper's 7000", got)
	}
}

// TestShapedNetwork starts a public-profile network in-process, checks
// that an onion service is reached through the shapers (every
// authority's shaper forwarded bytes) and that a round trip costs what
// the profile adds, then takes a relay down and up.
func TestShapedNetwork(t *testing.T) {
	skipShort(t)
	dir := t.TempDir()
	dumpLogs(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	n, err := Start(ctx, Options{Dir: dir, Profile: ProfilePublic, Progress: logProgress(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if got, want := n.ShapedNodes(), []string{"auth0", "auth1", "auth2", "relay0", "relay1", "relay2"}; !slices.Equal(got, want) {
		t.Fatalf("shaped nodes %v, want %v", got, want)
	}
	if n.Info().Profile != ProfilePublic {
		t.Errorf("Info().Profile = %q", n.Info().Profile)
	}
	cc, err := dialControl(ctx, n.ControlAddr(), n.CookiePath())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	j := startJoiner(t, ctx, n.ClientTorrc())
	addr := addOnion(t, ctx, j.ctl, echoServer(t))
	t0 := time.Now()
	if err := awaitEcho(ctx, n.SocksAddr(), addr); err != nil {
		t.Fatal(err)
	}
	t.Logf("onion reachable through the shaped network %.1fs after publishing", time.Since(t0).Seconds())
	for _, nick := range []string{"auth0", "auth1", "auth2"} {
		if st := n.Shaper(nick).Stats(); st.Bytes == 0 || st.Accepted == 0 {
			t.Errorf("%s's shaper forwarded nothing: %+v", nick, st)
		}
	}
	sh := n.Shaper("relay0")
	sh.SetDown(true)
	sh.SetDown(false)
	if st := sh.Stats(); st.Dropped == 0 {
		t.Logf("relay0 had no open connections to drop: %+v", st)
	}
	if err := awaitEcho(ctx, n.SocksAddr(), addr); err != nil {
		t.Fatalf("after relay0 went down and came back: %v", err)
	}
}

// TestDetachedShaped: a detached shaped network runs its shapers as their
// own process (this test binary standing in for `mmogit testnet shape`),
// records it with the tors, and Stop ends it too.
func TestDetachedShaped(t *testing.T) {
	skipShort(t)
	dir := t.TempDir()
	dumpLogs(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := Start(ctx, Options{Dir: dir, Profile: ProfilePublic, Detached: true}); err == nil {
		t.Fatal("detached shaped network without ShaperCommand started")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(shaperHelperEnv, "1")
	n, err := Start(ctx, Options{Dir: dir, Profile: ProfileSlow, Detached: true, ShaperCommand: []string{exe}, Progress: logProgress(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	info, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if info.Profile != ProfileSlow || len(info.PIDs) != 8 { // 3 authorities, 3 relays, client, shaper
		t.Fatalf("info: profile %q, PIDs %v; want slow and 8 PIDs", info.Profile, info.PIDs)
	}
	shaper := info.PIDs[len(info.PIDs)-1]
	if node, ok := NodeProcess(shaper, dir); !ok || node != "shaper" {
		t.Errorf("NodeProcess(%d) = %q, %v; want the shaper", shaper, node, ok)
	}
	j := startJoiner(t, ctx, n.ClientTorrc())
	if err := awaitEcho(ctx, n.SocksAddr(), addOnion(t, ctx, j.ctl, echoServer(t))); err != nil {
		t.Fatal(err)
	}
	if err := Stop(dir); err != nil {
		t.Fatal(err)
	}
	assertGone(t, info.PIDs)
}
