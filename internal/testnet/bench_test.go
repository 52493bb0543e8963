package testnet

import (
	"context"
	"slices"
	"testing"
	"time"
)

// BenchmarkStart measures bring-up: Start until the client is at 100 %,
// and until an onion service published on the client is reachable through
// its own SOCKS port. Each iteration is a whole network (~10 s), so run it
// with a fixed count:
//
//	go test ./internal/testnet -run '^$' -bench Start -benchtime 5x
//
// It reports medians as custom metrics and logs every run.
func BenchmarkStart(b *testing.B) {
	var boot, onion []float64
	for i := 0; b.Loop(); i++ {
		dir := b.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		t0 := time.Now()
		n, err := Start(ctx, Options{Dir: dir})
		if err != nil {
			cancel()
			b.Fatal(err)
		}
		tBoot := time.Since(t0)
		cc, err := dialControl(ctx, n.ControlAddr(), n.CookiePath())
		if err != nil {
			b.Fatal(err)
		}
		addr := addOnion(b, ctx, cc, echoServer(b))
		if err := awaitEcho(ctx, n.SocksAddr(), addr); err != nil {
			b.Fatal(err)
		}
		tOnion := time.Since(t0)
		cc.Close()
		n.Close()
		cancel()
		boot = append(boot, tBoot.Seconds())
		onion = append(onion, tOnion.Seconds())
		b.Logf("run %d: bootstrap %.1fs, onion reachable %.1fs", i+1, tBoot.Seconds(), tOnion.Seconds())
	}
	b.ReportMetric(median(boot), "s-bootstrap")
	b.ReportMetric(median(onion), "s-onion")
	b.Logf("bootstrap min/median/max %.1f/%.1f/%.1f s; onion %.1f/%.1f/%.1f s",
		slices.Min(boot), median(boot), slices.Max(boot), slices.Min(onion), median(onion), slices.Max(onion))
}

func median(s []float64) float64 {
	s = slices.Clone(s)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
