package gc_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/cache/gc"
)

// TestIndex: with an index, a collection reads again only the narinfos
// whose listed version changed. A narinfo rewritten with other references
// is read anew and what it now references stays; an index made under other
// trusted keys is not used.
func TestIndex(t *testing.T) {
	for _, bc := range []backendCase{fileCase(), s3Case()} {
		t.Run(bc.name, func(t *testing.T) {
			ctx := context.Background()
			inner := bc.open(t)
			f := newFixture(t, inner)
			var reads atomic.Int64
			b := &hooked{Backend: inner, before: func(op, key string) {
				if op == "get" && strings.HasSuffix(key, ".narinfo") {
					reads.Add(1)
				}
			}}
			index := filepath.Join(t.TempDir(), "narinfo.index")
			c := &gc.Collector{Backend: b, Trusted: []cache.PublicKey{f.key.Public()}, Index: index, DryRun: true}
			all := int64(len(f.kept) + len(f.gone))
			collect := func(what string, wantReads int64, wantIndexed int) *gc.Result {
				t.Helper()
				reads.Store(0)
				res, err := c.Collect(ctx, []string{f.root})
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				if got := reads.Load(); got != wantReads || res.Indexed != wantIndexed {
					t.Errorf("%s: read %d narinfos, %d from the index; want %d and %d", what, got, res.Indexed, wantReads, wantIndexed)
				}
				return res
			}
			collect("first dry run: no index yet", all, 0)
			collect("second dry run: every narinfo from the index", 0, int(all))

			// top now references g2 as well (re-signed): its listed version
			// changes, it is read again, and the g2 -> g1 -> g0 chain stays.
			ni, err := cache.ReadNarInfo(ctx, inner, f.root)
			if err != nil {
				t.Fatal(err)
			}
			g2 := f.gone[0]
			ni.References = append(ni.References, g2)
			slices.Sort(ni.References)
			if err := ni.Sign(f.key); err != nil {
				t.Fatal(err)
			}
			text := ni.String()
			if err := inner.Put(ctx, cache.NarInfoKey(f.root), strings.NewReader(text), int64(len(text))); err != nil {
				t.Fatal(err)
			}
			c.DryRun = false
			res := collect("collection after top changed", 1, int(all)-1)
			for _, p := range f.gone[:3] { // g2, g1, g0
				if !has(t, inner, cache.NarInfoKey(p)) {
					t.Errorf("%s is gone, but the rewritten top references it", p)
				}
			}
			if res.NarInfos.Objects != len(f.gone)-3 {
				t.Errorf("swept %d narinfos, want %d", res.NarInfos.Objects, len(f.gone)-3)
			}
			verify(t, inner, f.key, "after the collection")
			collect("after the collection: the kept narinfos from the index", 0, len(f.kept)+3)

			other, err := cache.GenerateKey("farm-gc-other-1")
			if err != nil {
				t.Fatal(err)
			}
			c.Trusted = append(c.Trusted, other.Public())
			collect("other trusted keys: the index is not used", int64(len(f.kept)+3), 0)
		})
	}
}
