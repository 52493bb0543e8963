package agent_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/config"
	"github.com/mmogit/mmogit/internal/localapi"
)

// bootstrapTo is ta's first listen address with its peer ID, as a
// bootstrap entry.
func (ta *testAgent) bootstrapTo() string {
	return fmt.Sprintf("%s/p2p/%s", ta.addrs[0], ta.peerID())
}

// findAd polls from's `tor discover service` until ok accepts the
// advertisement of of.
func findAd(t *testing.T, from, of *testAgent, service string, within time.Duration, ok func(localapi.Advertisement) bool) localapi.Advertisement {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := from.api.Discover(ctx, service)
		cancel()
		if err == nil {
			for _, ad := range res.Ads {
				if ad.Pubkey == of.id.PubHex() && ok(ad) {
					return ad
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no acceptable advertisement within %s (last %+v, %v)", service, within, res, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// `tor advertise` on an agent configured with no services keeps the
// advertisement published: it is still found, newer, after its TTL.
func TestAdvertiseKeptWithoutConfiguredServices(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out a real advertisement TTL")
	}
	const ttl = 3 * time.Second
	a := startAgent(t, agentSetup{cfg: directConfig()})
	cfg := directConfig()
	cfg.Bootstrap = []string{a.bootstrapTo()}
	cfg.AdvertisementTTL = config.Duration(ttl)
	b := startAgent(t, agentSetup{cfg: cfg})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// It may run before b's bootstrap finished; b retries on its own then.
	if _, err := b.api.Advertise(ctx, []string{"chat"}); err != nil {
		t.Logf("first advertise: %v", err)
	}
	first := findAd(t, a, b, "chat", 20*time.Second, func(localapi.Advertisement) bool { return true })
	time.Sleep(time.Until(first.Expires) + 500*time.Millisecond)
	later := findAd(t, a, b, "chat", 10*time.Second, func(ad localapi.Advertisement) bool {
		return ad.Seq > first.Seq && ad.Expires.After(time.Now())
	})
	if !slices.Equal(later.Services, []string{"chat"}) {
		t.Errorf("republished services %v, want [chat]", later.Services)
	}
}

// What `tor advertise` gave while the DHT had no peers is what gets
// published once it has some, not the configured services.
func TestAdvertiseBeforePeersIsKept(t *testing.T) {
	cfg := directConfig()
	cfg.Services = []string{"memory_sync"}
	b := startAgent(t, agentSetup{cfg: cfg})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := b.api.Advertise(ctx, []string{"chat"}); err == nil {
		t.Fatal("advertise with no peers succeeded")
	}
	if st, err := b.api.Status(ctx); err != nil || !slices.Equal(st.Services, []string{"chat"}) {
		t.Errorf("status services %v (%v), want [chat]", st.Services, err)
	}
	acfg := directConfig()
	acfg.Bootstrap = []string{b.bootstrapTo()}
	a := startAgent(t, agentSetup{cfg: acfg})
	findAd(t, a, b, "chat", 20*time.Second, func(ad localapi.Advertisement) bool {
		return slices.Equal(ad.Services, []string{"chat"})
	})
	// Wait past the old loop's 5 s retry, which used to republish the
	// configured set over the one given.
	time.Sleep(6 * time.Second)
	res, err := a.api.Discover(ctx, "memory_sync")
	if err != nil {
		t.Fatal(err)
	}
	for _, ad := range res.Ads {
		if ad.Pubkey == b.id.PubHex() {
			t.Errorf("b advertises %v, the configured set, over the one given", ad.Services)
		}
	}
	findAd(t, a, b, "chat", 10*time.Second, func(ad localapi.Advertisement) bool {
		return slices.Equal(ad.Services, []string{"chat"})
	})
}
