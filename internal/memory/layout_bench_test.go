package memory

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// BenchmarkLayout measures what the flat layout (every message at the root
// of its branch's tree, which the reference mmogit needs) costs against the
// old fan-out layout (<id[:2]>/<id>.json, the baseline), in the same run,
// on a repository already holding 10,000 and 100,000 messages of one author:
//
//   - post_ms: latency of one Post (one commit, loose objects)
//   - post_bytes: bytes written to the object store per Post
//   - add512_msgs/s: Add of 512 new messages (one sync MemoryResponse), the
//     sync store path: one commit, one packfile
//   - add512_bytes: bytes written per such Add
//
// Rounds alternate fan-out and flat; each metric is the median over rounds,
// and *_ratio is flat / fan-out. Run with -benchtime=1x: one iteration is
// the whole comparison (setup signs and imports the messages once per size).
//
//	go test -run '^$' -bench BenchmarkLayout -benchtime=1x ./internal/memory
func BenchmarkLayout(b *testing.B) {
	for _, size := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("msgs=%d", size), func(b *testing.B) {
			if testing.Short() && size > 10_000 {
				b.Skip("100,000 messages")
			}
			benchLayout(b, size)
		})
	}
}

type layoutStore struct {
	name                           string
	s                              *Store
	post, postBytes, add, addBytes []float64
}

func benchLayout(b *testing.B, size int) {
	ctx := context.Background()
	priv := ed25519.NewKeyFromSeed(make([]byte, 32))
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	const rounds, postsPerRound, batch = 7, 5, 512
	extra := rounds * batch
	msgs := make([]Message, size+2*extra) // base, then what each layout imports
	for i := range msgs {
		msgs[i] = Sign(priv, fmt.Sprintf("layout benchmark memory %d", i), t0.Add(time.Duration(i)*time.Millisecond))
	}
	var stores []*layoutStore
	for _, fan := range []bool{true, false} {
		s, err := Open(filepath.Join(b.TempDir(), "repo"))
		if err != nil {
			b.Fatal(err)
		}
		s.fanOut = fan
		if _, err := s.Add(ctx, msgs[:size]); err != nil { // one pack, as a clone would be
			b.Fatal(err)
		}
		name := "flat"
		if fan {
			name = "fanout"
		}
		stores = append(stores, &layoutStore{name: name, s: s})
	}
	b.ResetTimer()
	for range b.N {
		for r := range rounds {
			order := stores
			if r%2 == 1 {
				order = []*layoutStore{stores[1], stores[0]}
			}
			for _, ls := range order {
				off := size + r*batch
				if ls.name == "flat" {
					off += extra
				}
				before := objectBytes(b, ls.s.gitDir)
				var lat []float64
				for range postsPerRound {
					start := time.Now()
					if _, err := ls.s.Post(ctx, priv, "a post during the benchmark"); err != nil {
						b.Fatal(err)
					}
					lat = append(lat, float64(time.Since(start).Microseconds())/1000)
				}
				mid := objectBytes(b, ls.s.gitDir)
				start := time.Now()
				res, err := ls.s.Add(ctx, msgs[off:off+batch])
				if err != nil || res.Added != batch {
					b.Fatalf("Add = %+v, %v", res, err)
				}
				el := time.Since(start)
				after := objectBytes(b, ls.s.gitDir)
				ls.post = append(ls.post, median(lat))
				ls.postBytes = append(ls.postBytes, float64(mid-before)/postsPerRound)
				ls.add = append(ls.add, batch/el.Seconds())
				ls.addBytes = append(ls.addBytes, float64(after-mid))
			}
		}
	}
	b.StopTimer()
	fan, flat := stores[0], stores[1]
	for _, m := range []struct {
		name     string
		fan, flt []float64
	}{
		{"post_ms", fan.post, flat.post},
		{"post_bytes", fan.postBytes, flat.postBytes},
		{"add512_msgs/s", fan.add, flat.add},
		{"add512_bytes", fan.addBytes, flat.addBytes},
	} {
		f, l := median(m.fan), median(m.flt)
		b.ReportMetric(f, "fanout_"+m.name)
		b.ReportMetric(l, "flat_"+m.name)
		b.ReportMetric(l/f, "ratio_"+m.name)
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// objectBytes is the size of everything in the object store.
func objectBytes(b *testing.B, gitDir string) int64 {
	var n int64
	err := filepath.WalkDir(filepath.Join(gitDir, "objects"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			n += fi.Size()
		}
		return err
	})
	if err != nil && !os.IsNotExist(err) {
		b.Fatal(err)
	}
	return n
}
