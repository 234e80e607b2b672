//go:build linux

package main

import (
	"math"
	"strings"
	"testing"
)

func TestSampleFigures(t *testing.T) {
	cases := []struct {
		s           Sample
		median      float64
		lo, hi, p99 float64
	}{
		{Sample{3}, 3, 3, 3, 3},
		{Sample{5, 1, 3}, 3, 1, 5, 5},
		{Sample{4, 1, 3, 2}, 2.5, 1, 4, 4},
	}
	for _, c := range cases {
		lo, hi := c.s.Spread()
		if c.s.Median() != c.median || lo != c.lo || hi != c.hi || c.s.Percentile(99) != c.p99 {
			t.Errorf("%v: median %v spread %v–%v p99 %v", c.s, c.s.Median(), lo, hi, c.s.Percentile(99))
		}
	}
	var empty Sample
	if !math.IsNaN(empty.Median()) || !math.IsNaN(empty.Percentile(50)) {
		t.Error("an empty sample has a median")
	}
	hundred := make(Sample, 100)
	for i := range hundred {
		hundred[i] = float64(i + 1)
	}
	if hundred.Percentile(50) != 50 || hundred.Percentile(99) != 99 {
		t.Errorf("p50 %v p99 %v of 1..100", hundred.Percentile(50), hundred.Percentile(99))
	}
}

func TestRatioAndFormat(t *testing.T) {
	cases := []struct {
		got, want string
	}{
		{formatRatio(Ratio(3, 2)), "1.50×"},
		{formatRatio(Ratio(1, 0)), "—"},
		{formatRatio(Ratio(4.2, 1000)), "0.0042×"},
		{formatRatio(Ratio(math.NaN(), 2)), "—"},
		{formatSample(Sample{2, 1, 3}), "2.00 (1.00–3.00)"},
		{formatSample(Sample{1500, 1400}), "1450 (1400–1500)"},
		{formatSample(nil), "—"},
		{formatValue(12.345), "12.3"},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestMarkdownTable(t *testing.T) {
	tab := &Table{Title: "T", Columns: []string{"row", "a", "b"}}
	tab.Add("x", "1", "2")
	tab.Add("y|z", "3", "4")
	md := tab.Markdown()
	for _, want := range []string{"### T", "| row | a | b |", "|---|---|---|", "| x | 1 | 2 |", `| y\|z | 3 | 4 |`} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}
