package report

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"strconv"
)

// The plot's geometry, in SVG user units.
const (
	svgW, svgH             = 720, 440
	padL, padR, padT, padB = 78, 200, 40, 56
	plotW, plotH           = svgW - padL - padR, svgH - padT - padB
	legendX                = svgW - padR + 16
	tickLen                = 5
	fontFamily             = "sans-serif"
)

// The line colours (the Okabe-Ito palette, readable by the colour-blind).
var palette = []string{"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"}

// WriteSVG draws p as one standalone SVG document: axes (log where the
// axis says so), one polyline per line, dashed where Line.Dashed is set,
// and a legend.
func WriteSVG(w io.Writer, p *Plot) error {
	bw := bufio.NewWriter(w)
	writeSVG(bw, p, true)
	return bw.Flush()
}

type scale struct {
	lo, hi float64
	log    bool
}

func newScale(a Axis, vals []float64) scale {
	s := scale{lo: math.Inf(1), hi: math.Inf(-1), log: a.Log}
	for _, v := range vals {
		if s.log && v <= 0 {
			continue
		}
		s.lo, s.hi = math.Min(s.lo, v), math.Max(s.hi, v)
	}
	if math.IsInf(s.lo, 0) {
		s.lo, s.hi = 1, 10
	}
	if s.log {
		s.lo = math.Pow(10, math.Floor(math.Log10(s.lo)))
		s.hi = math.Pow(10, math.Ceil(math.Log10(s.hi)))
		if s.lo == s.hi {
			s.hi *= 10
		}
		return s
	}
	if s.lo > 0 {
		s.lo = 0
	}
	if s.hi == s.lo {
		s.hi = s.lo + 1
	}
	step := niceStep((s.hi - s.lo) / 5)
	s.hi = math.Ceil(s.hi/step) * step
	return s
}

func niceStep(raw float64) float64 {
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}

// at maps v to [0, 1] along the axis.
func (s scale) at(v float64) float64 {
	if s.log {
		return (math.Log10(v) - math.Log10(s.lo)) / (math.Log10(s.hi) - math.Log10(s.lo))
	}
	return (v - s.lo) / (s.hi - s.lo)
}

func (s scale) ticks() []float64 {
	var ts []float64
	if s.log {
		for v := s.lo; v <= s.hi*1.0001; v *= 10 {
			ts = append(ts, v)
		}
		return ts
	}
	step := niceStep((s.hi - s.lo) / 5)
	for v := s.lo; v <= s.hi+step/1e6; v += step {
		ts = append(ts, v)
	}
	return ts
}

func tickLabel(v float64) string {
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0"
	case a >= 1e9:
		return strconv.FormatFloat(v/1e9, 'g', 3, 64) + "G"
	case a >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', 3, 64) + "M"
	case a >= 1e3:
		return strconv.FormatFloat(v/1e3, 'g', 3, 64) + "k"
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

func axisTitle(a Axis) string {
	t := a.Label
	if a.Unit != "" {
		t += " (" + a.Unit + ")"
	}
	if a.Log {
		t += ", log scale"
	}
	return t
}

// writeSVG writes the plot; standalone adds the XML namespace and prolog
// that a file needs and a page's inline SVG does not.
func writeSVG(w *bufio.Writer, p *Plot, standalone bool) {
	var xs, ys []float64
	for _, l := range p.Lines {
		for _, pt := range l.Points {
			xs, ys = append(xs, pt.X), append(ys, pt.Y)
		}
	}
	sx, sy := newScale(p.X, xs), newScale(p.Y, ys)
	px := func(v float64) float64 { return padL + sx.at(v)*plotW }
	py := func(v float64) float64 { return padT + (1-sy.at(v))*plotH }
	esc := html.EscapeString

	if standalone {
		fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
	}
	fmt.Fprintf(w, "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" font-family=\"%s\" font-size=\"12\" role=\"img\">\n",
		svgW, svgH, svgW, svgH, fontFamily)
	fmt.Fprintf(w, "<title>%s</title>\n", esc(p.Title))
	fmt.Fprintf(w, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", svgW, svgH)
	fmt.Fprintf(w, "<text x=\"%d\" y=\"22\" font-size=\"15\" font-weight=\"bold\">%s</text>\n", padL, esc(p.Title))
	// Grid and ticks.
	for _, t := range sx.ticks() {
		x := px(t)
		fmt.Fprintf(w, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/>\n", x, padT, x, padT+plotH)
		fmt.Fprintf(w, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", x, padT+plotH+tickLen+13, tickLabel(t))
	}
	for _, t := range sy.ticks() {
		y := py(t)
		fmt.Fprintf(w, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", padL, y, padL+plotW, y)
		fmt.Fprintf(w, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", padL-tickLen-3, y+4, tickLabel(t))
	}
	fmt.Fprintf(w, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#333\"/>\n", padL, padT, plotW, plotH)
	fmt.Fprintf(w, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", padL+plotW/2, svgH-12, esc(axisTitle(p.X)))
	fmt.Fprintf(w, "<text transform=\"translate(18,%d) rotate(-90)\" text-anchor=\"middle\">%s</text>\n", padT+plotH/2, esc(axisTitle(p.Y)))
	// Lines and legend.
	for i, l := range p.Lines {
		color := palette[i%len(palette)]
		dash := ""
		if l.Dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		fmt.Fprintf(w, "<polyline class=\"series\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"", color, dash)
		for k, pt := range l.Points {
			if (sx.log && pt.X <= 0) || (sy.log && pt.Y <= 0) {
				continue
			}
			if k > 0 {
				w.WriteByte(' ')
			}
			fmt.Fprintf(w, "%.1f,%.1f", px(pt.X), py(pt.Y))
		}
		fmt.Fprintf(w, "\"><title>%s</title></polyline>\n", esc(l.Label))
		for _, pt := range l.Points {
			if (sx.log && pt.X <= 0) || (sy.log && pt.Y <= 0) {
				continue
			}
			fmt.Fprintf(w, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>\n", px(pt.X), py(pt.Y), color)
		}
		ly := padT + 8 + i*18
		fmt.Fprintf(w, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"%s/>\n", legendX, ly, legendX+22, ly, color, dash)
		fmt.Fprintf(w, "<text x=\"%d\" y=\"%d\">%s</text>\n", legendX+28, ly+4, esc(l.Label))
	}
	fmt.Fprintf(w, "</svg>\n")
}
