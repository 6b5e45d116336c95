// Package svgplot draws small line plots as SVG on the server, for pages
// with no JavaScript: values over time in, one self-contained <svg>
// element out. The output is deterministic (the same plot gives the same
// bytes) and every text it carries is escaped.
package svgplot

import (
	"fmt"
	"html"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Point is one value at one time.
type Point struct {
	Time  time.Time
	Value float64
}

// Series is one line of a plot.
type Series struct {
	Name   string
	Points []Point
}

// Plot is a line plot of series over time. The zero values of the optional
// fields give a 600×200 plot with plain number labels.
type Plot struct {
	Title  string
	Width  int // pixels; 0 means 600
	Height int // pixels; 0 means 200
	// Label formats a value for the y axis (for example Bytes); nil means
	// a plain number.
	Label  func(float64) string
	Series []Series
}

// colors are the series' colors, in order (repeating).
var colors = []string{"#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c"}

const (
	marginLeft   = 64
	marginRight  = 12
	marginTop    = 24
	marginBottom = 28
	yTicks       = 4
)

// num formats a coordinate: at most one decimal, no exponent.
func num(v float64) string {
	return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64)
}

func plain(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

// SVG renders the plot. Points that are not finite are left out; a plot
// with no points says so.
func (p Plot) SVG() string {
	w, h := p.Width, p.Height
	if w <= 0 {
		w = 600
	}
	if h <= 0 {
		h = 200
	}
	label := p.Label
	if label == nil {
		label = plain
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" font-family="sans-serif" font-size="11">`, w, h, w, h)
	if p.Title != "" {
		fmt.Fprintf(&b, `<title>%s</title><text x="%d" y="14" font-weight="bold">%s</text>`, esc(p.Title), marginLeft, esc(p.Title))
	}
	series := make([]Series, 0, len(p.Series))
	var minT, maxT time.Time
	minV, maxV := math.Inf(1), math.Inf(-1)
	for _, s := range p.Series {
		pts := make([]Point, 0, len(s.Points))
		for _, pt := range s.Points {
			if math.IsNaN(pt.Value) || math.IsInf(pt.Value, 0) {
				continue
			}
			pts = append(pts, pt)
			if minT.IsZero() || pt.Time.Before(minT) {
				minT = pt.Time
			}
			if maxT.IsZero() || pt.Time.After(maxT) {
				maxT = pt.Time
			}
			minV, maxV = math.Min(minV, pt.Value), math.Max(maxV, pt.Value)
		}
		sort.SliceStable(pts, func(i, j int) bool { return pts[i].Time.Before(pts[j].Time) })
		series = append(series, Series{s.Name, pts})
	}
	plotW, plotH := float64(w-marginLeft-marginRight), float64(h-marginTop-marginBottom)
	if math.IsInf(minV, 1) || plotW <= 0 || plotH <= 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="#6b7280">no data</text></svg>`, w/2, h/2)
		return b.String()
	}
	lo, hi, step := axis(math.Min(minV, 0), maxV)
	ticks := int(math.Round((hi - lo) / step))
	tick := func(i int) float64 { return lo + float64(i)*step }
	x := func(t time.Time) float64 {
		span := maxT.Sub(minT)
		if span <= 0 {
			return marginLeft + plotW/2
		}
		return marginLeft + plotW*float64(t.Sub(minT))/float64(span)
	}
	y := func(v float64) float64 { return marginTop + plotH*(1-(v-lo)/(hi-lo)) }

	// Grid and y labels.
	b.WriteString(`<g stroke="#e5e7eb" stroke-width="1">`)
	for i := 0; i <= ticks; i++ {
		fmt.Fprintf(&b, `<line x1="%d" y1="%s" x2="%s" y2="%s"/>`, marginLeft, num(y(tick(i))), num(marginLeft+plotW), num(y(tick(i))))
	}
	b.WriteString(`</g><g fill="#374151" text-anchor="end">`)
	for i := 0; i <= ticks; i++ {
		fmt.Fprintf(&b, `<text x="%d" y="%s">%s</text>`, marginLeft-6, num(y(tick(i))+4), esc(label(tick(i))))
	}
	b.WriteString(`</g>`)
	// X labels: the first and the last day.
	baseline := num(float64(h - marginBottom + 16))
	fmt.Fprintf(&b, `<g fill="#374151"><text x="%d" y="%s">%s</text>`, marginLeft, baseline, esc(minT.UTC().Format("Jan 2")))
	if maxT.Sub(minT) > 0 {
		fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="end">%s</text>`, num(marginLeft+plotW), baseline, esc(maxT.UTC().Format("Jan 2")))
	}
	b.WriteString(`</g>`)
	// Lines, and a dot on every point.
	for i, s := range series {
		if len(s.Points) == 0 {
			continue
		}
		color := colors[i%len(colors)]
		fmt.Fprintf(&b, `<g><title>%s</title>`, esc(s.Name))
		if len(s.Points) > 1 {
			coords := make([]string, len(s.Points))
			for j, pt := range s.Points {
				coords[j] = num(x(pt.Time)) + "," + num(y(pt.Value))
			}
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`, color, strings.Join(coords, " "))
		}
		for _, pt := range s.Points {
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="2.5" fill="%s"><title>%s: %s</title></circle>`,
				num(x(pt.Time)), num(y(pt.Value)), color, esc(pt.Time.UTC().Format("2006-01-02 15:04")), esc(label(pt.Value)))
		}
		b.WriteString(`</g>`)
	}
	// Legend, when there is more than one line.
	if len(series) > 1 {
		lx := marginLeft + int(plotW)
		for i := len(series) - 1; i >= 0; i-- {
			fmt.Fprintf(&b, `<text x="%d" y="14" text-anchor="end" fill="%s">%s</text>`, lx, colors[i%len(colors)], esc(series[i].Name))
			lx -= 8 + 7*len([]rune(series[i].Name))
		}
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// axis returns a range from at most lo to at least hi in yTicks steps of
// 1, 2 or 5 times a power of ten.
func axis(lo, hi float64) (float64, float64, float64) {
	if hi <= lo {
		if hi == 0 {
			return 0, 1, 1.0 / yTicks
		}
		lo, hi = math.Min(lo, 0), math.Max(hi, 0)
		if hi == lo {
			hi = lo + math.Abs(lo)
		}
	}
	raw := (hi - lo) / yTicks
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag * 10
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if mag*m >= raw {
			step = mag * m
			break
		}
	}
	lo = math.Floor(lo/step) * step
	hi = lo + step*math.Ceil((hi-lo)/step-1e-9)
	return lo, hi, step
}

// esc escapes text for SVG (XML) content and attributes.
func esc(s string) string { return html.EscapeString(s) }

// Bytes formats a byte count for a label: "0 B", "512 B", "1.5 KiB",
// "12 GiB".
func Bytes(v float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	neg := v < 0
	v = math.Abs(v)
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	s := strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64) + " " + units[i]
	if neg {
		s = "-" + s
	}
	return s
}
