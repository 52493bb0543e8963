package main

import (
	"strings"
	"testing"

	"github.com/mmogit/mmogit/internal/config"
	"github.com/mmogit/mmogit/internal/testnet"
)

// TestTestnetBridges: --testnet D --use-bridges takes the bridge from the
// network (tor.json needs none) and leaves the bridge lines to the tor
// package, so that each appears once in the torrc.
func TestTestnetBridges(t *testing.T) {
	line := "obfs4 127.0.0.1:5555 2C97EB137D8DA5D8F2F67B991DAAFCE79145E4B1 cert=abc iat-mode=0"
	info := testnet.Info{
		ClientTorrc: []string{"TestingTorNetwork 1", "DirAuthority a", "UseEntryGuards 0"},
		BridgeLine:  line,
		BridgeClientTorrc: []string{"TestingTorNetwork 1", "DirAuthority a",
			"UseBridges 1", "ClientTransportPlugin obfs4 exec /usr/bin/obfs4proxy", "Bridge " + line},
	}
	var ts config.TorSettings
	lines, err := testnetBridges(&ts, info, "/net")
	if err != nil {
		t.Fatal(err)
	}
	if len(ts.Bridges) != 1 || ts.Bridges[0] != line || ts.Obfs4Proxy != "/usr/bin/obfs4proxy" {
		t.Fatalf("settings = %+v", ts)
	}
	joined := strings.Join(lines, "\n")
	for _, bad := range []string{"Bridge", "UseBridges", "ClientTransportPlugin", "UseEntryGuards 0"} {
		if strings.Contains(joined, bad) {
			t.Errorf("network lines still hold %q:\n%s", bad, joined)
		}
	}
	if !strings.Contains(joined, "DirAuthority a") {
		t.Errorf("network lines lost the authorities:\n%s", joined)
	}

	// Bridges configured in tor.json win; obfs4proxy too.
	ts = config.TorSettings{Bridges: []string{"obfs4 10.0.0.1:1 FP cert=x iat-mode=0"}, Obfs4Proxy: "/opt/obfs4"}
	if _, err := testnetBridges(&ts, info, "/net"); err != nil || len(ts.Bridges) != 1 || ts.Bridges[0] != "obfs4 10.0.0.1:1 FP cert=x iat-mode=0" || ts.Obfs4Proxy != "/opt/obfs4" {
		t.Fatalf("configured bridges replaced: %+v %v", ts, err)
	}

	// A network without a bridge: a clear error, unless tor.json has one.
	noBridge := testnet.Info{ClientTorrc: info.ClientTorrc}
	ts = config.TorSettings{}
	if _, err := testnetBridges(&ts, noBridge, "/net"); err == nil || !strings.Contains(err.Error(), "--bridge") {
		t.Fatalf("network without a bridge: %v", err)
	}
	ts = config.TorSettings{Bridges: []string{"obfs4 10.0.0.1:1 FP cert=x iat-mode=0"}}
	if lines, err := testnetBridges(&ts, noBridge, "/net"); err != nil || len(lines) != 2 || strings.Contains(strings.Join(lines, "\n"), "UseEntryGuards") {
		t.Fatalf("own bridges into a network without one: %v %v", lines, err)
	}
}
