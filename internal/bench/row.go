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
	// Rounds, when set, is how many interleaved rounds Ours and Baseline
	// are the medians of; Min and Max span ours, BaselineMin and
	// BaselineMax the baseline's.
	Rounds      int      `json:"rounds,omitempty"`
	Min         *float64 `json:"min,omitempty"`
	Max         *float64 `json:"max,omitempty"`
	BaselineMin *float64 `json:"baseline_min,omitempty"`
	BaselineMax *float64 `json:"baseline_max,omitempty"`
	// Target, when set, is the goal for Ratio ("<= 1.05", ">= 0.9") and
	// Met whether this run reached it.
	Target string `json:"target,omitempty"`
	Met    *bool  `json:"met,omitempty"`
	// Note says what exactly was measured, for the table's last column.
	Note string `json:"note,omitempty"`
}

// RoundsRow builds a row from interleaved rounds: medians, with min and
// max of each side. A nil base means a fixed baseline of fixed, or none
// if fixed is 0.
func RoundsRow(name, unit string, ours, base []float64, fixed float64, note string) Row {
	b := fixed
	if base != nil {
		b = Median(base)
	}
	r := NewRow(name, unit, Median(ours), b, note)
	if base == nil && fixed == 0 {
		r = Solo(name, unit, Median(ours), note)
	}
	r.Rounds = len(ours)
	lo, hi := slices.Min(ours), slices.Max(ours)
	r.Min, r.Max = &lo, &hi
	if len(base) > 0 {
		blo, bhi := slices.Min(base), slices.Max(base)
		r.BaselineMin, r.BaselineMax = &blo, &bhi
	}
	return r
}

// WithTarget sets the row's target: at most (atMost) or at least ratio.
func (r Row) WithTarget(atMost bool, ratio float64) Row {
	if r.Ratio == nil {
		return r
	}
	met := *r.Ratio <= ratio
	r.Target = fmt.Sprintf("<= %g", ratio)
	if !atMost {
		met = *r.Ratio >= ratio
		r.Target = fmt.Sprintf(">= %g", ratio)
	}
	r.Met = &met
	return r
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
	fmt.Fprintln(tw, "NAME\tOURS\tBASELINE\tUNIT\tRATIO\tTARGET\tNOTE")
	for _, r := range rows {
		ours, base, ratio, target := formatNum(r.Ours), "-", "-", "-"
		if r.Min != nil {
			ours += " [" + formatNum(*r.Min) + ".." + formatNum(*r.Max) + "]"
		}
		if r.Baseline != nil {
			base = formatNum(*r.Baseline)
			if r.BaselineMin != nil {
				base += " [" + formatNum(*r.BaselineMin) + ".." + formatNum(*r.BaselineMax) + "]"
			}
		}
		if r.Ratio != nil {
			ratio = strconv.FormatFloat(*r.Ratio, 'f', 3, 64)
		}
		if r.Met != nil {
			target = r.Target + map[bool]string{true: " met", false: " MISSED"}[*r.Met]
		}
		note := r.Note
		if r.Rounds > 0 {
			note = fmt.Sprintf("median [min..max] of %d interleaved rounds; ", r.Rounds) + note
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, ours, base, r.Unit, ratio, target, note)
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
