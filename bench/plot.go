//go:build linux

package main

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

var systemColors = map[string]color.Color{
	"direct TCP": color.RGBA{0x99, 0x99, 0x99, 0xff},
	"frp":        color.RGBA{0xe0, 0x7b, 0x39, 0xff},
	"xp2p":       color.RGBA{0x2b, 0x6c, 0xb0, 0xff},
	// the real-paths section's systems
	"direct TCP cubic": color.RGBA{0xcc, 0xcc, 0xcc, 0xff},
	"frp tcp":          color.RGBA{0xf2, 0xb0, 0x80, 0xff},
	"frp xtcp":         color.RGBA{0xe0, 0x7b, 0x39, 0xff},
	"xp2p tcp":         color.RGBA{0x8d, 0xb4, 0xe2, 0xff},
}

// bars draws a grouped bar chart: one group per row, one bar per system (medians).
func bars(title, unit string, res *results, rows []string, systems []string, path string) error {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = unit
	w := vg.Points(14)
	for i, sys := range systems {
		vals := make(plotter.Values, len(rows))
		for j, row := range rows {
			v := res.get(row, sys).Median()
			if math.IsNaN(v) {
				v = 0
			}
			vals[j] = v
		}
		b, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return err
		}
		b.Color = systemColors[sys]
		b.LineStyle.Width = 0
		b.Offset = w * vg.Length(float64(i)-float64(len(systems)-1)/2)
		p.Add(b)
		p.Legend.Add(sys, b)
	}
	p.Legend.Top = true
	p.NominalX(rows...)
	return p.Save(vg.Length(150+90*len(rows))*vg.Millimeter/4, 9*vg.Centimeter, path)
}

// plots writes throughput.svg, latency.svg and memory.svg into dir.
func (r *report) plots(dir string) error {
	all := []string{"direct TCP", "frp", "xp2p"}
	if r.classic != nil {
		if err := bars("tcp proxy through the server: throughput", "Gbit/s", r.classic,
			[]string{"throughput, 1 stream, up", "throughput, 1 stream, down", "throughput, 8 streams, up", "throughput, 8 streams, down"},
			all, filepath.Join(dir, "throughput.svg")); err != nil {
			return fmt.Errorf("throughput plot: %w", err)
		}
		if err := bars("tcp proxy through the server: round trip of 32 bytes", "µs", r.classic,
			[]string{"round trip p50 (32 B)", "round trip p99 (32 B)"}, all, filepath.Join(dir, "latency.svg")); err != nil {
			return fmt.Errorf("latency plot: %w", err)
		}
	}
	if r.paths != nil {
		if err := bars("real paths: one stream, download", "Mbit/s", r.paths, pathRows("down"), pathSystems,
			filepath.Join(dir, "realpaths.svg")); err != nil {
			return fmt.Errorf("real paths plot: %w", err)
		}
	}
	if r.memory != nil {
		p := plot.New()
		p.Title.Text = "server RSS with n idle tcp proxies"
		p.X.Label.Text = "proxies"
		p.Y.Label.Text = "MiB"
		for _, sys := range []string{"frp", "xp2p"} {
			var pts plotter.XYs
			for _, n := range r.opts.proxyCounts {
				if v := r.memory.get(fmt.Sprintf("server RSS, %d proxies", n), sys).Median(); !math.IsNaN(v) {
					pts = append(pts, plotter.XY{X: float64(n), Y: v})
				}
			}
			if len(pts) == 0 {
				continue
			}
			line, points, err := plotter.NewLinePoints(pts)
			if err != nil {
				return err
			}
			line.Color, points.Color = systemColors[sys], systemColors[sys]
			p.Add(line, points)
			p.Legend.Add(sys, line)
		}
		p.Legend.Top = true
		if err := p.Save(12*vg.Centimeter, 8*vg.Centimeter, filepath.Join(dir, "memory.svg")); err != nil {
			return fmt.Errorf("memory plot: %w", err)
		}
	}
	return nil
}
