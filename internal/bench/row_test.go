package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestNewRowRatio(t *testing.T) {
	tests := []struct {
		name           string
		ours, baseline float64
		want           *float64
	}{
		{"slower", 0.5, 0.25, ptr(2)},
		{"faster", 1.5, 3, ptr(0.5)},
		{"equal", 7, 7, ptr(1)},
		{"zero baseline", 3, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRow("x", "s", tt.ours, tt.baseline, "")
			if r.Baseline == nil || *r.Baseline != tt.baseline {
				t.Fatalf("baseline = %v, want %v", r.Baseline, tt.baseline)
			}
			switch {
			case tt.want == nil && r.Ratio != nil:
				t.Fatalf("ratio = %v, want null", *r.Ratio)
			case tt.want != nil && (r.Ratio == nil || *r.Ratio != *tt.want):
				t.Fatalf("ratio = %v, want %v", r.Ratio, *tt.want)
			}
		})
	}
}

func ptr(f float64) *float64 { return &f }

// TestRowJSON pins the wire form `mmogit bench --json` prints.
func TestRowJSON(t *testing.T) {
	rows := []Row{
		NewRow("sync_onion", "MB/s", 1.5, 3, ""),
		Solo("agent_rss", "MB", 36.25, "idle"),
	}
	b, err := json.Marshal(rows)
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"name":"sync_onion","ours":1.5,"baseline":3,"unit":"MB/s","ratio":0.5},` +
		`{"name":"agent_rss","ours":36.25,"baseline":null,"unit":"MB","ratio":null,"note":"idle"}]`
	if string(b) != want {
		t.Fatalf("json\n got %s\nwant %s", b, want)
	}
	var back []Row
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back[1].Baseline != nil || back[1].Ratio != nil || *back[0].Ratio != 0.5 {
		t.Fatalf("round trip: %+v", back)
	}
}

func TestWriteTable(t *testing.T) {
	var buf bytes.Buffer
	err := WriteTable(&buf, []Row{
		NewRow("connect_onion", "s", 0.7105, 0.4275, "median of 5"),
		Solo("onion_encode_ns", "ns", 1034.6, ""),
		NewRow("sync_incremental_bytes", "bytes", 1342426, 24323318, ""),
		NewRow("tiny", "s", 0.0023921, 0, ""),
		RoundsRow("sync_small", "s", []float64{3, 1, 2}, []float64{2, 1, 3}, 0, "x").WithTarget(true, 1.5),
		RoundsRow("rtts", "round trips", []float64{1, 1.5, 1}, nil, 1, "y").WithTarget(true, 1),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"NAME                    OURS                  BASELINE              UNIT         RATIO  TARGET      NOTE",
		"connect_onion           0.7105                0.4275                s            1.662  -           median of 5",
		"onion_encode_ns         1035                  -                     ns           -      -           ",
		"sync_incremental_bytes  1342426               24323318              bytes        0.055  -           ",
		"tiny                    0.002392              0                     s            -      -           ",
		"sync_small              2.000 [1.000..3.000]  2.000 [1.000..3.000]  s            1.000  <= 1.5 met  median [min..max] of 3 interleaved rounds; x",
		"rtts                    1.000 [1.000..1.500]  1.000                 round trips  1.000  <= 1 met    median [min..max] of 3 interleaved rounds; y",
	}
	got := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	if len(got) != len(want) {
		t.Fatalf("table:\n%s", buf.String())
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d\n got %q\nwant %q", i, got[i], want[i])
		}
	}
}

func TestFormatNum(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0"}, {1905.4, "1905"}, {643.94, "643.9"}, {2.71749, "2.717"},
		{0.30561, "0.3056"}, {0.0044651, "0.004465"}, {-2.5, "-2.500"},
	}
	for _, tt := range tests {
		if got := formatNum(tt.in); got != tt.want {
			t.Errorf("formatNum(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{nil, 0}, {[]float64{3}, 3}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		in := append([]float64(nil), tt.in...)
		if got := Median(in); got != tt.want {
			t.Errorf("Median(%v) = %v, want %v", tt.in, got, tt.want)
		}
		for i := range in {
			if in[i] != tt.in[i] {
				t.Fatalf("Median modified its input: %v", in)
			}
		}
	}
}

func TestParseVmRSS(t *testing.T) {
	tests := []struct {
		name, status string
		want         float64
		err          error
	}{
		{"tor", "Name:\ttor\nVmPeak:\t  30000 kB\nVmRSS:\t   13672 kB\nThreads:\t3\n", 13672 * 1024 / 1e6, nil},
		{"missing", "Name:\tkthreadd\nThreads:\t1\n", 0, errNoRSS},
		{"bad unit", "VmRSS:\t 12 MB\n", 0, errNoRSS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseVmRSS(bufio.NewScanner(strings.NewReader(tt.status)))
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Fatalf("got %v, %v; want %v, %v", got, err, tt.want, tt.err)
			}
		})
	}
}
