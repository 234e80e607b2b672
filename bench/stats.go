//go:build linux

package main

import (
	"fmt"
	"math"
	"sort"
)

// Sample is the repetitions of one figure.
type Sample []float64

// Median of the sample (NaN if empty).
func (s Sample) Median() float64 {
	if len(s) == 0 {
		return math.NaN()
	}
	v := append(Sample(nil), s...)
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// Spread is the range of the sample: min and max.
func (s Sample) Spread() (lo, hi float64) {
	if len(s) == 0 {
		return math.NaN(), math.NaN()
	}
	lo, hi = s[0], s[0]
	for _, v := range s[1:] {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	return lo, hi
}

// Percentile returns the p-th percentile (0-100) by nearest rank.
func (s Sample) Percentile(p float64) float64 {
	if len(s) == 0 {
		return math.NaN()
	}
	v := append(Sample(nil), s...)
	sort.Float64s(v)
	rank := int(math.Ceil(p / 100 * float64(len(v))))
	return v[min(max(rank-1, 0), len(v)-1)]
}

// Ratio is a/b, NaN when either is missing or b is zero.
func Ratio(a, b float64) float64 {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return math.NaN()
	}
	return a / b
}

// formatValue prints a figure with a precision that suits its size.
func formatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "—"
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// formatSample prints "median (min–max)".
func formatSample(s Sample) string {
	if len(s) == 0 {
		return "—"
	}
	lo, hi := s.Spread()
	if len(s) == 1 || lo == hi {
		return formatValue(s.Median())
	}
	return fmt.Sprintf("%s (%s–%s)", formatValue(s.Median()), formatValue(lo), formatValue(hi))
}

// formatRatio prints a ratio as "1.23×".
func formatRatio(r float64) string {
	if math.IsNaN(r) || math.IsInf(r, 0) {
		return "—"
	}
	if r < 0.1 {
		return fmt.Sprintf("%.2g×", r) // 0.0042×, not 0.00×
	}
	return fmt.Sprintf("%.2f×", r)
}
