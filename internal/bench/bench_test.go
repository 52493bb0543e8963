package bench

import (
	"context"
	"testing"
	"time"
)

// The micro numbers of `mmogit bench`, as go test benchmarks:
//
//	go test ./internal/bench -run '^$' -bench .
func BenchmarkOnionEncode(b *testing.B) {
	ad, _, err := sampleAd()
	if err != nil {
		b.Fatal(err)
	}
	f := OnionEncode(ad.PubKey)
	for b.Loop() {
		f()
	}
}

func BenchmarkOnionVerify(b *testing.B) {
	ad, _, err := sampleAd()
	if err != nil {
		b.Fatal(err)
	}
	f := OnionVerify(ad.OnionAddress, ad.PubKey)
	for b.Loop() {
		f()
	}
}

func BenchmarkAdVerify(b *testing.B) {
	ad, _, err := sampleAd()
	if err != nil {
		b.Fatal(err)
	}
	f := AdVerify(&ad, time.Now())
	for b.Loop() {
		f()
	}
}

func BenchmarkEd25519Verify(b *testing.B) {
	ad, msg, err := sampleAd()
	if err != nil {
		b.Fatal(err)
	}
	f := Ed25519Verify(ad.PubKey, msg, ad.Signature)
	for b.Loop() {
		f()
	}
}

// BenchmarkSyncDirect is one full sync of 1,000 memories of ~2 KB between
// direct-mode libp2p hosts on loopback (fresh receiver each iteration),
// reporting MB/s and memories/s.
func BenchmarkSyncDirect(b *testing.B) {
	const n = 1000
	e := rawEnv(b)
	ctx := context.Background()
	id, st, err := prepareHolder(ctx, Options{Dir: e.dir, Memories: n, MemoryBytes: DefaultMemoryBytes})
	if err != nil {
		b.Fatal(err)
	}
	holder, err := newDirectHost(ctx, id, st)
	if err != nil {
		b.Fatal(err)
	}
	defer holder.close()
	var total time.Duration
	var bytes int64
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		recvStore, err := openStore(b.TempDir(), "recv")
		if err != nil {
			b.Fatal(err)
		}
		recv, err := newDirectHost(ctx, nil, recvStore)
		if err != nil {
			b.Fatal(err)
		}
		if err := holder.h.Connect(ctx, recv.addrInfo()); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		s, err := timedSync(ctx, holder, recv)
		if err != nil {
			b.Fatal(err)
		}
		total, bytes = total+s.dur, bytes+s.bytes
		b.StopTimer()
		recv.close()
		b.StartTimer()
	}
	b.ReportMetric(float64(bytes)/1e6/total.Seconds(), "MB/s")
	b.ReportMetric(float64(b.N*n)/total.Seconds(), "memories/s")
}
