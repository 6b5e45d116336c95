package svgplot_test

import (
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/svgplot"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var day0 = time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC)

func days(values ...float64) []svgplot.Point {
	pts := make([]svgplot.Point, len(values))
	for i, v := range values {
		pts[i] = svgplot.Point{Time: day0.AddDate(0, 0, i), Value: v}
	}
	return pts
}

// wellFormed fails unless svg is one well-formed XML document whose root
// is <svg>, and returns its character data.
func wellFormed(t *testing.T, svg string) string {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(svg))
	var text strings.Builder
	depth, roots := 0, 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, svg)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				roots++
				if tok.Name.Local != "svg" {
					t.Fatalf("root element <%s>, want <svg>", tok.Name.Local)
				}
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			text.Write(tok)
		}
	}
	if roots != 1 {
		t.Fatalf("%d root elements, want 1", roots)
	}
	return text.String()
}

// The golden files pin the drawing; regenerate them with -update and look
// at them in a browser.
func TestGolden(t *testing.T) {
	tests := []struct {
		name string
		plot svgplot.Plot
	}{
		{"cache-size", svgplot.Plot{Title: "Cache size", Label: svgplot.Bytes,
			Series: []svgplot.Series{{Name: "bytes", Points: days(3<<30, 3.5*(1<<30), 4<<30, 2.5*(1<<30), 2.6*(1<<30), 3<<30)}}}},
		{"two-series", svgplot.Plot{Title: "Objects", Width: 400, Height: 150,
			Series: []svgplot.Series{{Name: "narinfos", Points: days(100, 120, 90)}, {Name: "NARs", Points: days(100, 118, 80)}}}},
		{"one-point", svgplot.Plot{Series: []svgplot.Series{{Name: "bytes", Points: days(1234)}}}},
		{"empty", svgplot.Plot{Title: "Cache size"}},
		{"flat-zero", svgplot.Plot{Series: []svgplot.Series{{Name: "z", Points: days(0, 0, 0)}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.plot.SVG()
			wellFormed(t, got)
			if again := tt.plot.SVG(); again != got {
				t.Fatal("two renderings of one plot differ")
			}
			golden := filepath.Join("testdata", tt.name+".svg")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("SVG differs from %s (rerun with -update if intended):\ngot  %s\nwant %s", golden, got, want)
			}
		})
	}
}

// Text from outside (titles, series names, labels) is escaped: it reads
// back as the same characters and never becomes markup.
func TestEscapes(t *testing.T) {
	evil := `<script>alert("x")</script>&amp;'`
	p := svgplot.Plot{Title: evil, Label: func(float64) string { return "<b>" },
		Series: []svgplot.Series{{Name: evil, Points: days(1, 2)}, {Name: "]]><x/>", Points: days(2, 1)}}}
	svg := p.SVG()
	text := wellFormed(t, svg)
	if strings.Contains(svg, "<script") || strings.Contains(svg, "<b>") || strings.Contains(svg, "<x/>") {
		t.Errorf("markup from text got through:\n%s", svg)
	}
	for _, want := range []string{evil, "<b>", "]]><x/>"} {
		if !strings.Contains(text, want) {
			t.Errorf("text %q does not read back from the SVG", want)
		}
	}
}

// Points come in any order and may be unusable.
func TestPoints(t *testing.T) {
	sorted := svgplot.Plot{Series: []svgplot.Series{{Name: "a", Points: days(1, 5, 3)}}}.SVG()
	pts := days(1, 5, 3)
	pts[0], pts[2] = pts[2], pts[0]
	shuffled := svgplot.Plot{Series: []svgplot.Series{{Name: "a", Points: pts}}}.SVG()
	if sorted != shuffled {
		t.Error("the order of the points changed the drawing")
	}
	bad := svgplot.Plot{Series: []svgplot.Series{{Name: "a", Points: append(days(1, 5, 3), svgplot.Point{Time: day0.AddDate(0, 0, 1), Value: math.NaN()}, svgplot.Point{Time: day0, Value: math.Inf(1)})}}}.SVG()
	if bad != sorted {
		t.Errorf("non-finite points were drawn:\n%s", bad)
	}
	if none := (svgplot.Plot{Series: []svgplot.Series{{Name: "a", Points: []svgplot.Point{{Time: day0, Value: math.NaN()}}}}}).SVG(); !strings.Contains(none, "no data") {
		t.Errorf("a plot of nothing finite: %s", none)
	}
}

func TestBytes(t *testing.T) {
	for _, tt := range []struct {
		in   float64
		want string
	}{
		{0, "0 B"}, {512, "512 B"}, {1024, "1 KiB"}, {1536, "1.5 KiB"},
		{5 << 20, "5 MiB"}, {12.25 * (1 << 30), "12.3 GiB"}, {3 << 40, "3 TiB"}, {-2048, "-2 KiB"},
	} {
		if got := svgplot.Bytes(tt.in); got != tt.want {
			t.Errorf("Bytes(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
