package closurediff

import (
	"cmp"
	"slices"
)

// Path is what a diff needs to know about one store path of a closure.
type Path struct {
	NarSize uint64 // bytes of its NAR: what it takes in a store
	// FileSize is the compressed NAR's size in the binary cache: what a
	// host downloads for it. 0 means unknown (not in the cache, or the
	// closure was read from a store).
	FileSize uint64
}

// Closure maps every store path of a closure (full "/nix/store/…" paths)
// to its sizes.
type Closure map[string]Path

// Kind says how a package differs between two closures.
type Kind string

// The kinds of Change.
const (
	Added   Kind = "added"   // the package is only in the new closure
	Removed Kind = "removed" // the package is only in the old closure
	Changed Kind = "changed" // in both, with different versions
	Rebuilt Kind = "rebuilt" // in both, same versions, other store paths
)

// Change is one package that differs between two closures. Paths are
// grouped into packages by ParseName; one package may have several
// versions in a closure (and several outputs per version).
type Change struct {
	Package string `json:"package"`
	Kind    Kind   `json:"kind"`
	// From are the versions only the old closure has, To those only the
	// new one has (sorted; "" is a path without a version). Both are empty
	// for a rebuild.
	From []string `json:"from"`
	To   []string `json:"to"`
	// Direction is "upgrade" or "downgrade" for a change from one version
	// to one other (by CompareVersions), empty otherwise.
	Direction string `json:"direction,omitempty"`
	// SizeBefore and SizeAfter are the NAR sizes of all the package's
	// paths in the old and the new closure.
	SizeBefore uint64 `json:"size_before"`
	SizeAfter  uint64 `json:"size_after"`
	SizeDelta  int64  `json:"size_delta"`
}

// Download is what a host that holds the old closure fetches to switch to
// the new one: the new closure's paths that the old one lacks.
type Download struct {
	Paths int    `json:"paths"`
	Bytes uint64 `json:"bytes"` // sum of the known compressed sizes
	// Unknown counts the paths whose compressed size is not known (no
	// narinfo in the cache yet): Bytes leaves them out.
	Unknown int `json:"unknown,omitempty"`
}

// Diff is how a new closure differs from an old one.
type Diff struct {
	// Packages lists every package that was added, removed, changed
	// version or was rebuilt, sorted by package name (bytewise, as Nix
	// sorts them).
	Packages []Change `json:"packages"`
	Added    int      `json:"added"`   // packages of Kind Added
	Removed  int      `json:"removed"` // packages of Kind Removed
	Changed  int      `json:"changed"` // packages of Kind Changed
	Rebuilt  int      `json:"rebuilt"` // packages of Kind Rebuilt

	PathsBefore int      `json:"paths_before"`
	PathsAfter  int      `json:"paths_after"`
	SizeBefore  uint64   `json:"size_before"` // NAR bytes of the whole old closure
	SizeAfter   uint64   `json:"size_after"`
	SizeDelta   int64    `json:"size_delta"`
	Download    Download `json:"download"`
}

// group is one package's paths in one closure, by version.
type group struct {
	versions map[string][]string
	size     uint64
}

// groupByPackage groups the paths of c that belong to the packages of
// interest.
func groupByPackage(c Closure, of map[string]bool) map[string]*group {
	out := make(map[string]*group, len(of))
	for p, info := range c {
		n := ParseName(p)
		if !of[n.Package] {
			continue
		}
		g := out[n.Package]
		if g == nil {
			g = &group{versions: map[string][]string{}}
			out[n.Package] = g
		}
		g.versions[n.Version] = append(g.versions[n.Version], p)
		g.size += info.NarSize
	}
	return out
}

// Compute compares the new closure cur with the old one. Either may be
// empty (a host's first build compares against nothing).
func Compute(old, cur Closure) Diff {
	d := Diff{PathsBefore: len(old), PathsAfter: len(cur)}
	// Only packages with a path in one closure but not the other can
	// differ: group those alone.
	touched := map[string]bool{}
	for p, info := range old {
		d.SizeBefore += info.NarSize
		if _, ok := cur[p]; !ok {
			touched[ParseName(p).Package] = true
		}
	}
	for p, info := range cur {
		d.SizeAfter += info.NarSize
		if _, ok := old[p]; !ok {
			touched[ParseName(p).Package] = true
			d.Download.Paths++
			if info.FileSize == 0 {
				d.Download.Unknown++
			}
			d.Download.Bytes += info.FileSize
		}
	}
	before, after := groupByPackage(old, touched), groupByPackage(cur, touched)
	d.SizeDelta = int64(d.SizeAfter) - int64(d.SizeBefore)

	names := make([]string, 0, len(before)+len(after))
	for n := range before {
		names = append(names, n)
	}
	for n := range after {
		if _, ok := before[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	empty := &group{}
	for _, name := range names {
		b, a := before[name], after[name]
		if b == nil {
			b = empty
		}
		if a == nil {
			a = empty
		}
		c := Change{Package: name, SizeBefore: b.size, SizeAfter: a.size, From: []string{}, To: []string{}}
		c.SizeDelta = int64(a.size) - int64(b.size)
		for v := range b.versions {
			if _, ok := a.versions[v]; !ok {
				c.From = append(c.From, v)
			}
		}
		for v := range a.versions {
			if _, ok := b.versions[v]; !ok {
				c.To = append(c.To, v)
			}
		}
		slices.Sort(c.From)
		slices.Sort(c.To)
		switch {
		case len(b.versions) == 0:
			c.Kind = Added
			d.Added++
		case len(a.versions) == 0:
			c.Kind = Removed
			d.Removed++
		case len(c.From) > 0 || len(c.To) > 0:
			c.Kind = Changed
			d.Changed++
			if len(c.From) == 1 && len(c.To) == 1 {
				switch CompareVersions(c.From[0], c.To[0]) {
				case -1:
					c.Direction = "upgrade"
				case 1:
					c.Direction = "downgrade"
				}
			}
		case c.SizeDelta != 0 || !samePaths(b, a):
			c.Kind = Rebuilt
			d.Rebuilt++
		default:
			continue
		}
		d.Packages = append(d.Packages, c)
	}
	if d.Packages == nil {
		d.Packages = []Change{}
	}
	return d
}

// samePaths reports whether two groups with the same versions hold the
// same store paths.
func samePaths(b, a *group) bool {
	for v, bp := range b.versions {
		ap := a.versions[v]
		if len(ap) != len(bp) {
			return false
		}
		slices.Sort(ap)
		slices.Sort(bp)
		if !slices.Equal(ap, bp) {
			return false
		}
	}
	return true
}

var kindRank = map[Kind]int{Changed: 0, Added: 1, Removed: 2, Rebuilt: 3}

// byWeight orders changes for a reader: version changes first, then
// added, then removed packages, and rebuilds last; within a kind the
// largest size change first, then by name.
func byWeight(a, b Change) int {
	if r := cmp.Compare(kindRank[a.Kind], kindRank[b.Kind]); r != 0 {
		return r
	}
	if r := cmp.Compare(abs(b.SizeDelta), abs(a.SizeDelta)); r != 0 {
		return r
	}
	return cmp.Compare(a.Package, b.Package)
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}
