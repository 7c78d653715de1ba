package bench

import (
	"fmt"
	"os"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// writeChart draws the run's series as a PNG: end-to-end latency
// percentiles, throughput, and the CPU and memory of both processes, over
// time, one panel each.
func writeChart(path string, res *Result) error {
	if len(res.Series) == 0 {
		return fmt.Errorf("no samples to draw")
	}
	type line struct {
		name string
		y    func(Point) float64
	}
	panel := func(title, ylabel string, lines ...line) (*plot.Plot, error) {
		p := plot.New()
		p.Title.Text = title
		p.X.Label.Text = "seconds since start"
		p.Y.Label.Text = ylabel
		p.Y.Min = 0
		p.Legend.Top = true
		p.Legend.Left = true
		p.Add(plotter.NewGrid())
		for i, l := range lines {
			xys := make(plotter.XYs, 0, len(res.Series))
			for _, pt := range res.Series {
				xys = append(xys, plotter.XY{X: pt.T, Y: l.y(pt)})
			}
			ln, err := plotter.NewLine(xys)
			if err != nil {
				return nil, err
			}
			ln.Color = plotutil.Color(i)
			ln.Width = vg.Points(1.2)
			p.Add(ln)
			p.Legend.Add(l.name, ln)
		}
		return p, nil
	}
	title := fmt.Sprintf("livetab bench %s", res.Scenario)
	lat, err := panel(title+": end-to-end latency per second (collector accept → WebSocket)", "ms",
		line{"p50", func(p Point) float64 { return p.P50 }},
		line{"p90", func(p Point) float64 { return p.P90 }},
		line{"p99", func(p Point) float64 { return p.P99 }},
		line{"max", func(p Point) float64 { return p.Max }})
	if err != nil {
		return err
	}
	thr, err := panel("throughput", "per second",
		line{"events accepted", func(p Point) float64 { return p.Events }},
		line{"hits accepted", func(p Point) float64 { return p.Hits }},
		line{"deliveries", func(p Point) float64 { return p.Deliveries }},
		line{"HTTP errors", func(p Point) float64 { return p.Errors }})
	if err != nil {
		return err
	}
	cpu, err := panel("CPU", "% of one core",
		line{"system under test", func(p Point) float64 { return p.SUTCPU }},
		line{"generator", func(p Point) float64 { return p.GenCPU }},
		// On the same scale: steal is a share of the whole machine,
		// whose cores are each 100 % here.
		line{"stolen by the hypervisor", func(p Point) float64 { return max(0, p.Steal) * float64(res.Machine.CPUs) }})
	if err != nil {
		return err
	}
	mem, err := panel("system under test", "RSS MB / backlog k msgs",
		line{"RSS (MB)", func(p Point) float64 { return p.SUTRSSMB }},
		line{"consumer lag (k messages)", func(p Point) float64 { return max(0, float64(p.Lag)) / 1000 }})
	if err != nil {
		return err
	}
	plots := [][]*plot.Plot{{lat}, {thr}, {cpu}, {mem}}
	// A run without subscribers (restart) has no latency to draw.
	if !slices.ContainsFunc(res.Series, func(p Point) bool { return p.Count > 0 }) {
		plots = plots[1:]
	}
	img := vgimg.New(12*vg.Inch, vg.Length(3.5*float64(len(plots)))*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(plots), Cols: 1, PadTop: vg.Points(8), PadBottom: vg.Points(8), PadLeft: vg.Points(8), PadRight: vg.Points(12), PadY: vg.Points(16)}
	canvases := plot.Align(plots, tiles, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
