package calibrate

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/testnet"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testnet.CloseShared()
	os.Exit(code)
}

func TestStat(t *testing.T) {
	for _, tc := range []struct {
		in            []float64
		med, min, max float64
	}{
		{[]float64{3, 1, 2}, 2, 1, 3},
		{[]float64{4, 1, 3, 2}, 2.5, 1, 4},
		{[]float64{5}, 5, 5, 5},
	} {
		s := stat(tc.in)
		if s.Median != tc.med || s.Min != tc.min || s.Max != tc.max {
			t.Errorf("stat(%v) = %+v, want median %v min %v max %v", tc.in, s, tc.med, tc.min, tc.max)
		}
	}
}

func TestTargets(t *testing.T) {
	if _, ok := TargetsFor(testnet.ProfileLoopback); ok {
		t.Error("loopback has targets")
	}
	pub, ok1 := TargetsFor(testnet.ProfilePublic)
	slow, ok2 := TargetsFor(testnet.ProfileSlow)
	if !ok1 || !ok2 || pub.NewConnS != slow.NewConnS || pub.RTTS != slow.RTTS || slow.BulkMBps.Max >= pub.BulkMBps.Min {
		t.Errorf("public %+v, slow %+v: want the same latencies and slow's bulk below public's", pub, slow)
	}
}

// TestRunLoopback measures raw tor on the shared (loopback) network: every
// figure is positive and the loopback network has no targets.
func TestRunLoopback(t *testing.T) {
	if testing.Short() {
		t.Skip("private Tor network")
	}
	n := testnet.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, err := Run(ctx, Options{Network: n.Info(), Dir: t.TempDir(), Rounds: 2, BulkBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("loopback: new_conn %.3fs, rtt %.4fs, bulk %.2f MB/s", r.NewConnS.Median, r.RTTS.Median, r.BulkMBps.Median)
	if len(r.NewConnS.Samples) != 2 || len(r.RTTS.Samples) != 8 || len(r.BulkMBps.Samples) != 2 {
		t.Errorf("samples: %+v", r)
	}
	if r.NewConnS.Min <= 0 || r.RTTS.Min <= 0 || r.BulkMBps.Min <= 0 {
		t.Errorf("non-positive figures: %+v", r)
	}
	if r.Targets != nil || r.InRange != nil {
		t.Errorf("loopback result has targets: %+v", r)
	}
}
