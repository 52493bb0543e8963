package discovery

import (
	"encoding/json"
	"sync"
	"testing"
	"time"
)

// BenchmarkVerify measures signature verification plus the structural
// checks, single-threaded: verifies/s is the per-core rate.
func BenchmarkVerify(b *testing.B) {
	id := idFromHex(b, seed2)
	ad := mustSign(b, id, []string{"chat", "memory_sync"}, []string{"/ip4/127.0.0.1/tcp/7420"}, 1, t0, time.Hour)
	for b.Loop() {
		if err := Verify(&ad, t0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifies/s")
}

// BenchmarkDecodeVerify is what a DHT node does per stored record.
func BenchmarkDecodeVerify(b *testing.B) {
	id := idFromHex(b, seed2)
	raw, _ := json.Marshal(mustSign(b, id, []string{"chat", "memory_sync"}, []string{"/ip4/127.0.0.1/tcp/7420"}, 1, t0, time.Hour))
	v := Validator{Clock: func() time.Time { return t0 }}
	key := RecordKey(id.Public)
	for b.Loop() {
		if err := v.Validate(key, raw); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkDiscover20 is one Discover on 20 TCP loopback hosts that all
// advertise the service.
func BenchmarkDiscover20(b *testing.B) {
	nodes := newNet(b, 20, Options{})
	var wg sync.WaitGroup
	for _, nd := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := nd.d.Advertise(ctxT(b), []string{"memory_sync"}, nil); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	for b.Loop() {
		res, err := nodes[7].d.Discover(ctxT(b), "memory_sync")
		if err != nil || len(res.Ads) != 19 {
			b.Fatalf("Discover = %d ads, %v", len(res.Ads), err)
		}
	}
}
