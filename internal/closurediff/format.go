package closurediff

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/homelab-farm/farm/internal/textcut"
)

// Summary is the short form for a table cell: packages added, changed
// version and removed, then what a host downloads, as in
// "+2 ~14 -1 · 38 MiB". A download whose size is only partly known (paths
// not in the cache yet) reads "≥38 MiB"; identical closures read
// "no change".
func (d Diff) Summary() string {
	if len(d.Packages) == 0 && d.Download.Paths == 0 {
		return "no change"
	}
	return fmt.Sprintf("+%d ~%d -%d · %s", d.Added, d.Changed, d.Removed, d.downloadSize())
}

func (d Diff) downloadSize() string {
	s := FormatBytes(d.Download.Bytes)
	if d.Download.Unknown > 0 {
		s = "≥" + s
	}
	return s
}

// StatusLine is the one-line form for a forge's commit status description,
// at most limit bytes (GitHub allows 140 characters; counting bytes keeps
// within any limit in characters too): the counts, the download,
// the closure size change and as many package changes as fit, as in
// "+2 ~14 -1, fetch 38 MiB (120 paths), size +12 MiB: linux 6.12.9 → 6.12.10, +15 more".
func (d Diff) StatusLine(limit int) string {
	if len(d.Packages) == 0 && d.Download.Paths == 0 {
		return textcut.Bytes("no change", limit)
	}
	head := fmt.Sprintf("+%d ~%d -%d, fetch %s (%d paths), size %s",
		d.Added, d.Changed, d.Removed, d.downloadSize(), d.Download.Paths, FormatDelta(d.SizeDelta))
	rest := limit - len(head) - len(": ")
	if rest < 8 {
		return textcut.Bytes(head, limit)
	}
	return head + ": " + d.Headline(rest)
}

// Headline names the package changes that matter most within limit
// bytes, for a notification: "linux 6.12.9 → 6.12.10, +2 more".
// Version changes come first (largest size change first), then added and
// removed packages; rebuilds with unchanged versions are only counted when
// nothing else changed.
func (d Diff) Headline(limit int) string {
	var items []Change
	for _, c := range d.Packages {
		if c.Kind != Rebuilt {
			items = append(items, c)
		}
	}
	if len(items) == 0 {
		switch d.Rebuilt {
		case 0:
			return textcut.Bytes("no package changes", limit)
		case 1:
			return textcut.Bytes(d.Packages[0].Package+" rebuilt", limit)
		}
		return textcut.Bytes(strconv.Itoa(d.Rebuilt)+" packages rebuilt", limit)
	}
	slices.SortFunc(items, byWeight)
	out, shown := "", 0
	for i, c := range items {
		next := describe(c)
		if out != "" {
			next = out + ", " + next
		}
		candidate := next
		if left := len(items) - i - 1; left > 0 {
			candidate += fmt.Sprintf(", +%d more", left)
		}
		if len(candidate) > limit {
			break
		}
		out, shown = next, i+1
	}
	switch left := len(items) - shown; {
	case shown == 0 && len(items) == 1:
		return textcut.Bytes(describe(items[0]), limit)
	case shown == 0:
		return textcut.Bytes(fmt.Sprintf("%d packages changed", len(items)), limit)
	case left > 0:
		return out + fmt.Sprintf(", +%d more", left)
	}
	return out
}

// describe renders one change: "linux 6.12.9 → 6.12.10", "foo 1.0 added",
// "bar removed", "foo {1.0, 1.1} → ∅".
func describe(c Change) string {
	switch c.Kind {
	case Added:
		if v := versions(c.To); v != "ε" {
			return c.Package + " " + v + " added"
		}
		return c.Package + " added"
	case Removed:
		if v := versions(c.From); v != "ε" {
			return c.Package + " " + v + " removed"
		}
		return c.Package + " removed"
	case Rebuilt:
		return c.Package + " rebuilt"
	}
	return c.Package + " " + versions(c.From) + " → " + versions(c.To)
}

// versions renders a version set as Nix does: "∅" for none, "ε" for the
// empty version; several in braces.
func versions(vs []string) string {
	switch len(vs) {
	case 0:
		return "∅"
	case 1:
		return orEpsilon(vs[0])
	}
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = orEpsilon(v)
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func orEpsilon(v string) string {
	if v == "" {
		return "ε"
	}
	return v
}

// FormatBytes renders a size in binary units: "512 B", "3.4 MiB", "38 MiB".
func FormatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatUint(n, 10) + " B"
	}
	v := float64(n)
	suffix := "KiB"
	for _, s := range []string{"KiB", "MiB", "GiB", "TiB"} {
		v /= unit
		suffix = s
		if v < unit {
			break
		}
	}
	if v < 10 {
		return strconv.FormatFloat(v, 'f', 1, 64) + " " + suffix
	}
	return strconv.FormatFloat(v, 'f', 0, 64) + " " + suffix
}

// FormatDelta renders a size change with its sign: "+12 MiB", "-3.4 KiB",
// "±0 B".
func FormatDelta(n int64) string {
	switch {
	case n > 0:
		return "+" + FormatBytes(uint64(n))
	case n < 0:
		return "-" + FormatBytes(uint64(-n))
	}
	return "±0 B"
}

// NixText renders the diff as `nix store diff-closures` prints it (without
// colours): one line per package whose versions changed or whose size
// changed by at least 8 KiB, "name: 1.0 → 1.1, +12.5 KiB".
func (d Diff) NixText() string {
	var b strings.Builder
	for _, c := range d.Packages {
		versionsChanged := len(c.From) > 0 || len(c.To) > 0
		showDelta := abs(c.SizeDelta) >= 8*1024
		if !versionsChanged && !showDelta {
			continue
		}
		var items []string
		if versionsChanged {
			items = append(items, nixVersions(c.From)+" → "+nixVersions(c.To))
		}
		if showDelta {
			items = append(items, fmt.Sprintf("%+.1f KiB", float64(c.SizeDelta)/1024))
		}
		fmt.Fprintf(&b, "%s: %s\n", c.Package, strings.Join(items, ", "))
	}
	return b.String()
}

func nixVersions(vs []string) string {
	if len(vs) == 0 {
		return "∅"
	}
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = orEpsilon(v)
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}
