package agent_test

import (
	"testing"

	"github.com/mmogit/mmogit/internal/agent"
	"github.com/mmogit/mmogit/internal/config"
	"github.com/mmogit/mmogit/internal/discovery"
)

// TestDHTLimitsFromConfig: tor.json's dht section is what the agent's DHT
// store enforces, and its defaults are the discovery package's.
func TestDHTLimitsFromConfig(t *testing.T) {
	d := config.Default().DHT
	if d.MaxRecords != discovery.DefaultMaxRecords || d.MaxProviders != discovery.DefaultMaxProviders || d.MaxProvidersPerPeer != discovery.DefaultMaxProvidersPerPeer {
		t.Errorf("config.Default().DHT = %+v, discovery defaults %d/%d/%d", d,
			discovery.DefaultMaxRecords, discovery.DefaultMaxProviders, discovery.DefaultMaxProvidersPerPeer)
	}
	for _, lim := range []config.DHTSettings{d, {MaxRecords: 20, MaxProviders: 40, MaxProvidersPerPeer: 3}} {
		cfg := directConfig()
		cfg.DHT = lim
		ta := startAgent(t, agentSetup{cfg: cfg})
		disc := agent.DiscoveryOf(ta.Agent)
		if disc == nil {
			t.Fatal("agent ready but discovery not started")
		}
		got := disc.Limits()
		if got.MaxRecords != lim.MaxRecords || got.MaxProviders != lim.MaxProviders || got.MaxProvidersPerPeer != lim.MaxProvidersPerPeer {
			t.Errorf("config %+v: store enforces %+v", lim, got)
		}
		ta.stop()
	}
}
