package tor

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/testnet"
)

// BenchmarkTestnetBringUp measures, per iteration, a fresh private network
// (testnet.Start until its client is at 100 %), then a managed tor joining
// it: tor.Start until bootstrapped, and until its first onion service is
// published (first HS_DESC UPLOADED). Each iteration takes ~15 s, so run it
// with a fixed count:
//
//	go test ./internal/tor -run '^$' -bench TestnetBringUp -benchtime 5x
//
// It reports medians as metrics and logs min/median/max.
func BenchmarkTestnetBringUp(b *testing.B) {
	var up, boot, pub []float64
	for i := 0; b.Loop(); i++ {
		u, bo, p, err := bringUpOnce(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		up, boot, pub = append(up, u.Seconds()), append(boot, bo.Seconds()), append(pub, p.Seconds())
		b.Logf("run %d: network up %.1fs; joined tor bootstrapped %.1fs, service published %.1fs after tor.Start",
			i+1, u.Seconds(), bo.Seconds(), p.Seconds())
	}
	b.ReportMetric(median(up), "s-network")
	b.ReportMetric(median(boot), "s-join")
	b.ReportMetric(median(pub), "s-published")
	b.Logf("network up min/median/max %s; tor.Start→bootstrapped %s; tor.Start→published %s",
		spread(up), spread(boot), spread(pub))
}

// bringUpOnce starts a network in dir, joins it and publishes a service,
// then stops everything.
func bringUpOnce(dir string) (network, bootstrap, published time.Duration, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t0 := time.Now()
	nw, err := testnet.Start(ctx, testnet.Options{Dir: filepath.Join(dir, "net")})
	if err != nil {
		return 0, 0, 0, err
	}
	defer nw.Close()
	network = time.Since(t0)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, 0, err
	}
	defer ln.Close()
	j, err := join(ctx, dir, nw.ClientTorrc(), Config{})
	if err != nil {
		return 0, 0, 0, err
	}
	defer j.Stop(context.Background())
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	s, err := j.Publish(ctx, ServiceConfig{Key: key, VirtualPort: 80, Target: ln.Addr().String()})
	if err != nil {
		return 0, 0, 0, err
	}
	if err := s.WaitPublished(ctx); err != nil {
		return 0, 0, 0, err
	}
	return network, j.bootstrap, time.Since(j.start), nil
}

func median(s []float64) float64 {
	s = slices.Clone(s)
	slices.Sort(s)
	switch {
	case len(s) == 0:
		return 0
	case len(s)%2 == 1:
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func spread(s []float64) string {
	if len(s) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f/%.1f/%.1f s", slices.Min(s), median(s), slices.Max(s))
}
