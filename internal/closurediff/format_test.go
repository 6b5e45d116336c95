package closurediff_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/homelab-farm/farm/internal/closurediff"
)

const mib = 1 << 20

// sp makes a store path with a fixed-looking hash from a name and a salt.
func sp(salt, name string) string {
	h := fmt.Sprintf("%032d", len(salt)*7919+len(name))
	h = strings.NewReplacer("0", "a", "1", "b", "2", "c", "3", "d", "4", "f").Replace(h)
	return "/nix/store/" + h[:32-len(salt)] + salt + "-" + name
}

// sample is a diff like the example: linux upgraded, firefox
// upgraded, two packages added, one removed, one rebuilt.
func sample() closurediff.Diff {
	old := closurediff.Closure{
		sp("a", "linux-6.12.9"):     {NarSize: 150 * mib},
		sp("a", "firefox-133.0"):    {NarSize: 250 * mib},
		sp("a", "glibc-2.40"):       {NarSize: 30 * mib},
		sp("a", "oldtool-1.0"):      {NarSize: 1 * mib},
		sp("a", "etc"):              {NarSize: 1000},
		sp("a", "nixos-system-x-1"): {NarSize: 2000},
	}
	cur := closurediff.Closure{
		sp("b", "linux-6.12.10"):    {NarSize: 152 * mib, FileSize: 30 * mib},
		sp("b", "firefox-134.0"):    {NarSize: 251 * mib, FileSize: 8 * mib},
		sp("a", "glibc-2.40"):       {NarSize: 30 * mib, FileSize: 7 * mib},
		sp("b", "newtool-0.1"):      {NarSize: 2 * mib, FileSize: mib / 4},
		sp("b", "helper"):           {NarSize: 5000, FileSize: 1000},
		sp("b", "etc"):              {NarSize: 1100, FileSize: 500},
		sp("b", "nixos-system-x-2"): {NarSize: 2000, FileSize: 400},
	}
	return closurediff.Compute(old, cur)
}

func TestCompute(t *testing.T) {
	d := sample()
	if d.Added != 2 || d.Changed != 3 || d.Removed != 1 || d.Rebuilt != 1 {
		t.Errorf("counts added %d changed %d removed %d rebuilt %d, want 2 3 1 1", d.Added, d.Changed, d.Removed, d.Rebuilt)
	}
	// glibc is the same path: not downloaded, not listed.
	wantBytes := uint64(30*mib + 8*mib + mib/4 + 1000 + 500 + 400)
	if d.Download != (closurediff.Download{Paths: 6, Bytes: wantBytes}) {
		t.Errorf("download %+v, want 6 paths of %d bytes", d.Download, wantBytes)
	}
	if d.SizeDelta != int64(d.SizeAfter)-int64(d.SizeBefore) || d.SizeDelta != 2*mib+mib+2*mib+5000+100-mib {
		t.Errorf("size delta %d (before %d after %d)", d.SizeDelta, d.SizeBefore, d.SizeAfter)
	}
	var names []string
	for _, c := range d.Packages {
		names = append(names, c.Package+":"+string(c.Kind))
	}
	want := "etc:rebuilt firefox:changed helper:added linux:changed newtool:added nixos-system-x:changed oldtool:removed"
	for _, c := range d.Packages {
		if c.Kind == closurediff.Changed && c.Direction != "upgrade" {
			t.Errorf("%s %v → %v: direction %q, want upgrade", c.Package, c.From, c.To, c.Direction)
		}
	}
	down := closurediff.Compute(closurediff.Closure{sp("a", "linux-6.12.10"): {NarSize: 1}}, closurediff.Closure{sp("b", "linux-6.12.9"): {NarSize: 1}})
	if len(down.Packages) != 1 || down.Packages[0].Direction != "downgrade" {
		t.Errorf("6.12.10 → 6.12.9: %+v, want a downgrade", down.Packages)
	}
	if got := strings.Join(names, " "); got != want {
		t.Errorf("packages %s, want %s", got, want)
	}

	same := closurediff.Compute(closurediff.Closure{sp("a", "x-1"): {NarSize: 1}}, closurediff.Closure{sp("a", "x-1"): {NarSize: 1}})
	if len(same.Packages) != 0 || same.Download.Paths != 0 || same.Summary() != "no change" {
		t.Errorf("identical closures: %+v, summary %q", same, same.Summary())
	}
	first := closurediff.Compute(nil, closurediff.Closure{sp("a", "x-1"): {NarSize: 1}})
	if first.Added != 1 || first.Download.Paths != 1 || first.Download.Unknown != 1 {
		t.Errorf("against nothing: %+v", first)
	}
}

func TestFormats(t *testing.T) {
	d := sample()
	if got, want := d.Summary(), "+2 ~3 -1 · 38 MiB"; got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
	tests := []struct {
		limit int
		want  string
	}{
		{140, "+2 ~3 -1, fetch 38 MiB (6 paths), size +4.0 MiB: linux 6.12.9 → 6.12.10, firefox 133.0 → 134.0, nixos-system-x 1 → 2, +3 more"},
		{100, "+2 ~3 -1, fetch 38 MiB (6 paths), size +4.0 MiB: linux 6.12.9 → 6.12.10, +5 more"},
		{60, "+2 ~3 -1, fetch 38 MiB (6 paths), size +4.0 MiB: 6 packag…"},
		{30, "+2 ~3 -1, fetch 38 MiB (6 p…"},
	}
	for _, tt := range tests {
		got := d.StatusLine(tt.limit)
		if got != tt.want {
			t.Errorf("StatusLine(%d) = %q, want %q", tt.limit, got, tt.want)
		}
		if n := len(got); n > tt.limit {
			t.Errorf("StatusLine(%d) has %d bytes", tt.limit, n)
		}
	}
	headlines := []struct {
		limit int
		want  string
	}{
		{1000, "linux 6.12.9 → 6.12.10, firefox 133.0 → 134.0, nixos-system-x 1 → 2, newtool 0.1 added, helper added, oldtool 1.0 removed"},
		{40, "linux 6.12.9 → 6.12.10, +5 more"},
		{20, "6 packages changed"},
		{5, "6 …"},
	}
	for _, tt := range headlines {
		if got := d.Headline(tt.limit); got != tt.want {
			t.Errorf("Headline(%d) = %q, want %q", tt.limit, got, tt.want)
		}
	}

	// Partly known download; a rebuild only.
	partial := closurediff.Compute(
		closurediff.Closure{sp("a", "etc"): {NarSize: 10}},
		closurediff.Closure{sp("b", "etc"): {NarSize: 10}, sp("b", "x-1"): {NarSize: 5, FileSize: 3 * mib}})
	if got, want := partial.Summary(), "+1 ~0 -0 · ≥3.0 MiB"; got != want {
		t.Errorf("partial Summary() = %q, want %q", got, want)
	}
	rebuilt := closurediff.Compute(closurediff.Closure{sp("a", "etc"): {NarSize: 10}}, closurediff.Closure{sp("b", "etc"): {NarSize: 10}})
	if got, want := rebuilt.Headline(100), "etc rebuilt"; got != want {
		t.Errorf("rebuild Headline = %q, want %q", got, want)
	}
}

func TestJSON(t *testing.T) {
	b, err := json.Marshal(sample())
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"packages", "added", "removed", "changed", "rebuilt", "paths_before", "paths_after", "size_before", "size_after", "size_delta", "download"} {
		if _, ok := got[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, b)
		}
	}
	pkgs := got["packages"].([]any)
	linux := pkgs[3].(map[string]any)
	if linux["package"] != "linux" || linux["kind"] != "changed" || fmt.Sprint(linux["from"]) != "[6.12.9]" || fmt.Sprint(linux["to"]) != "[6.12.10]" {
		t.Errorf("linux entry %v", linux)
	}
	var back closurediff.Diff
	if err := json.Unmarshal(b, &back); err != nil || back.Download != sample().Download || len(back.Packages) != 7 {
		t.Errorf("round trip: %+v, %v", back, err)
	}
}

func TestFormatBytes(t *testing.T) {
	tests := []struct {
		n    uint64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"}, {10 * 1024, "10 KiB"},
		{38 * mib, "38 MiB"}, {38*mib + mib/2, "38 MiB"}, {3 << 30, "3.0 GiB"}, {5 << 40, "5.0 TiB"}, {5000 << 40, "5000 TiB"},
	}
	for _, tt := range tests {
		if got := closurediff.FormatBytes(tt.n); got != tt.want {
			t.Errorf("FormatBytes(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
	for n, want := range map[int64]string{0: "±0 B", 2048: "+2.0 KiB", -3 * mib: "-3.0 MiB"} {
		if got := closurediff.FormatDelta(n); got != want {
			t.Errorf("FormatDelta(%d) = %q, want %q", n, got, want)
		}
	}
}
