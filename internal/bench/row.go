package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"text/tabwriter"
)

// Row is one measurement: ours next to its baseline.
type Row struct {
	Name string  `json:"name"`
	Ours float64 `json:"ours"`
	// Baseline is the raw-transport number measured the same way in the
	// same run; nil when there is nothing to compare with.
	Baseline *float64 `json:"baseline"`
	Unit     string   `json:"unit"`
	// Ratio is Ours/Baseline; nil without a baseline (or a zero one).
	Ratio *float64 `json:"ratio"`
	// Note says what exactly was measured, for the table's last column.
	Note string `json:"note,omitempty"`
}

// NewRow builds a row with a baseline and computes the ratio.
func NewRow(name, unit string, ours, baseline float64, note string) Row {
	r := Row{Name: name, Unit: unit, Ours: ours, Baseline: &baseline, Note: note}
	if baseline != 0 && !math.IsNaN(baseline) && !math.IsInf(baseline, 0) {
		ratio := ours / baseline
		r.Ratio = &ratio
	}
	return r
}

// Solo builds a row without a baseline.
func Solo(name, unit string, ours float64, note string) Row {
	return Row{Name: name, Unit: unit, Ours: ours, Note: note}
}

// WriteTable prints rows as an aligned table; absent baselines and ratios
// print as "-".
func WriteTable(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tOURS\tBASELINE\tUNIT\tRATIO\tNOTE")
	for _, r := range rows {
		base, ratio := "-", "-"
		if r.Baseline != nil {
			base = formatNum(*r.Baseline)
		}
		if r.Ratio != nil {
			ratio = strconv.FormatFloat(*r.Ratio, 'f', 3, 64)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, formatNum(r.Ours), base, r.Unit, ratio, r.Note)
	}
	return tw.Flush()
}

// formatNum prints about four significant digits without exponents for the
// magnitudes a benchmark produces (milliseconds to gigabytes).
func formatNum(v float64) string {
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0"
	case a >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// Median of s (0 for an empty s); s is not modified.
func Median(s []float64) float64 {
	if len(s) == 0 {
		return 0
	}
	s = slices.Clone(s)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
