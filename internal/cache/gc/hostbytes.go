package gc

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/parallel"
	"github.com/homelab-farm/farm/internal/state"
)

// sized is what HostBytes keeps of one narinfo.
type sized struct {
	refs      []key20
	nar, file int64
	missing   bool
}

// HostBytes returns, for every host, the distinct store paths the closures
// of its roots (the generations it may run) hold in the cache and their
// bytes: unpacked (narinfo NarSize) and stored (FileSize). Each narinfo is
// read once, however many hosts share it; a path the cache lacks counts
// nothing. Hosts come back by name.
func (c *Collector) HostBytes(ctx context.Context, roots map[string][]string) ([]state.HostBytes, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("host bytes: %w", err)
	}
	seen := make(map[key20]*sized)
	hosts := make([]string, 0, len(roots))
	for h := range roots {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	out := make([]state.HostBytes, 0, len(hosts))
	for _, host := range hosts {
		hb := state.HostBytes{Host: host}
		reached := make(map[key20]struct{})
		var frontier []key20
		add := func(k key20) {
			if _, ok := reached[k]; !ok {
				reached[k] = struct{}{}
				frontier = append(frontier, k)
			}
		}
		for _, p := range roots[host] {
			k, ok := pathKey(p)
			if !ok {
				return nil, fmt.Errorf("host bytes of %s: %q is not a store path", host, p)
			}
			add(k)
		}
		for len(frontier) > 0 {
			batch := frontier
			frontier = nil
			if err := c.readSized(ctx, batch, seen); err != nil {
				return nil, fmt.Errorf("host bytes of %s: %w", host, err)
			}
			for _, k := range batch {
				s := seen[k]
				if s.missing {
					continue
				}
				hb.Paths++
				hb.NarBytes += s.nar
				hb.FileBytes += s.file
				for _, r := range s.refs {
					add(r)
				}
			}
		}
		out = append(out, hb)
	}
	return out, nil
}

// readSized reads the narinfos of keys not yet in seen, jobs at once.
func (c *Collector) readSized(ctx context.Context, keys []key20, seen map[key20]*sized) error {
	var todo []key20
	for _, k := range keys {
		if _, ok := seen[k]; !ok {
			todo = append(todo, k)
		}
	}
	got := make([]*sized, len(todo))
	err := parallel.ForEach(ctx, len(todo), c.jobs(), func(i int) error {
		ni, err := c.readNarInfo(ctx, todo[i])
		if errors.Is(err, cache.ErrNotFound) {
			got[i] = &sized{missing: true}
			return nil
		}
		if err != nil {
			return err
		}
		s := &sized{nar: int64(ni.NarSize), file: int64(ni.FileSize)}
		for _, ref := range ni.References {
			if k, ok := pathKey(ref); ok && k != todo[i] {
				s.refs = append(s.refs, k)
			}
		}
		got[i] = s
		return nil
	})
	if err != nil {
		return err
	}
	for i, k := range todo {
		seen[k] = got[i]
	}
	return nil
}
