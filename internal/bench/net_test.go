package bench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/testnet"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testnet.CloseShared()
	os.Exit(code)
}

func rawEnv(t testing.TB) *env {
	t.Helper()
	raw, err := NewRawServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return &env{dir: t.TempDir(), raw: raw}
}

// TestRawServer speaks both modes over real TCP.
func TestRawServer(t *testing.T) {
	e := rawEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, n := range []int64{0, 1, 1 << 20} {
		if _, err := timedPush(ctx, e.dialTCP, n); err != nil {
			t.Fatalf("push %d: %v", n, err)
		}
	}
	c, err := e.dialTCP(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := firstEcho(ctx, c); err != nil {
		t.Fatal(err)
	}
}

// TestSyncDirect runs the direct-TCP sync measurement with two real git
// stores and libp2p hosts on loopback.
func TestSyncDirect(t *testing.T) {
	e := rawEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o := Options{Dir: e.dir, Memories: 40, MemoryBytes: 500, SyncRounds: 2}
	id, st, err := prepareHolder(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := measureDirectSync(ctx, e, o, id, st, func(string, ...any) {})
	if err != nil {
		t.Fatal(err)
	}
	checkRows(t, rows, "sync_direct", "sync_direct_memories", "stream_direct")
}

// TestOnion runs the onion measurements once on the private network:
// connect (ours and raw), full and incremental sync over onion.
func TestOnion(t *testing.T) {
	if testing.Short() {
		t.Skip("private Tor network: slow")
	}
	nw := testnet.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	info := nw.Info()
	e, err := startEnv(ctx, dir, &info, info.Profile, func(string, ...any) {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.close)
	recv, err := openStore(dir, "recv")
	if err != nil {
		t.Fatal(err)
	}
	target, err := e.newOnionHost(ctx, recv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(target.close)
	rows, err := measureConnectOnion(ctx, e, target, 1)
	if err != nil {
		t.Fatal(err)
	}
	checkRows(t, rows, "connect_onion", "connect_onion_socks", "connect_onion_libp2p_handshake")
	id, st, err := prepareHolder(ctx, Options{Dir: filepath.Join(dir, "h"), Memories: 30, MemoryBytes: 500})
	if err != nil {
		t.Fatal(err)
	}
	rows, err = measureOnionSync(ctx, e, Options{Dir: dir, SyncRounds: 1, Iterations: 1}, id, st, target, func(string, ...any) {})
	if err != nil {
		t.Fatal(err)
	}
	checkRows(t, rows, "sync_onion", "sync_onion_memories", "stream_onion", "sync_incremental_bytes", "sync_small", "rtts_sync_small")
	if inc := rows[3]; *inc.Ratio >= 1 {
		t.Errorf("incremental sync moved %v bytes, the full one %v", inc.Ours, *inc.Baseline)
	}
	// One new memory each side, pushed as the summaries cross: the
	// dialer's Hello, the listener's push, the dialer's push, the
	// listener's Bye (the old exchange took 3.5 after the connection).
	if rtts := rows[5]; rtts.Ours != 2 {
		t.Errorf("sync_small took %v round trips, want 2", rtts.Ours)
	}
}

// checkRows checks names, order and that every number is positive.
func checkRows(t *testing.T, rows []Row, names ...string) {
	t.Helper()
	if len(rows) != len(names) {
		t.Fatalf("got %d rows, want %v: %+v", len(rows), names, rows)
	}
	for i, r := range rows {
		if r.Name != names[i] {
			t.Errorf("row %d is %q, want %q", i, r.Name, names[i])
		}
		if !(r.Ours > 0) || (r.Baseline != nil && !(*r.Baseline > 0)) {
			t.Errorf("row %s has a non-positive number: %+v", r.Name, r)
		}
		var buf strings.Builder
		WriteTable(&buf, []Row{r})
		t.Log(strings.Split(buf.String(), "\n")[1])
	}
}
