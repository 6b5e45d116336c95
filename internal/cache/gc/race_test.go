package gc_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/cache/gc"
)

// raceStale is the collectors' StaleAfter in the race tests (pushers poll
// a running collection every tenth of it). A collection stops once its
// last heartbeat is older than half of it: long enough that a loaded
// machine rarely gets there, and the tests accept a stop on a lost lease
// as a legitimate outcome (see run).
const raceStale = 12 * time.Second

// forceTries is how often a forced interleaving is set up again when its
// collection stopped on a lost lease before it could be forced.
const forceTries = 3

// race is an old closure in a cache (top -> o[n-1] -> ... -> o[0], no
// root keeps it) and a new path y whose closure shares part of it.
type race struct {
	b     cache.Backend
	store *fakeStore
	key   cache.SecretKey
	old   []string
	y     string
}

func newRace(t *testing.T, b cache.Backend, n int) *race {
	t.Helper()
	s := newFakeStore(t)
	key, err := cache.GenerateKey("farm-gc-1")
	if err != nil {
		t.Fatal(err)
	}
	r := &race{b: b, store: s, key: key}
	prev := []string(nil)
	for i := range n {
		p := s.add(t, "old", 200+i, prev...)
		r.old = append(r.old, p)
		prev = []string{p}
	}
	push(t, b, key, s, r.old[n-1])
	fresh := s.add(t, "fresh-leaf", 5000)
	r.y = s.add(t, "y", 300, r.old[n/2], fresh)
	time.Sleep(10 * time.Millisecond) // the old paths are older than the collection's start
	return r
}

func (r *race) pusher(b cache.Backend) *cache.Pusher {
	return &cache.Pusher{Backend: b, Key: r.key, Store: r.store, StoreRoot: r.store.root, Jobs: 4}
}

func (r *race) collector(b cache.Backend) *gc.Collector {
	return &gc.Collector{Backend: b, Trusted: []cache.PublicKey{r.key.Public()}, StaleAfter: raceStale, Jobs: 4}
}

// run pushes y through pb and collects (no roots, no grace) through cb at
// once, and returns the push's result and whether the collection stopped
// because it lost its lease (its heartbeat fell behind on a loaded
// machine): a legitimate stop, after which the cache must verify as well.
func (r *race) run(t *testing.T, pb, cb cache.Backend) (res cache.Result, leaseLost bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	var pushErr, gcErr error
	wg.Go(func() { res, pushErr = r.pusher(pb).Push(ctx, r.y) })
	wg.Go(func() { _, gcErr = r.collector(cb).Collect(ctx, nil) })
	wg.Wait()
	if pushErr != nil {
		t.Fatalf("push: %v", pushErr)
	}
	if errors.Is(gcErr, gc.ErrLeaseLost) {
		t.Logf("the collection stopped on a lost lease: %v", gcErr)
		return res, true
	}
	if gcErr != nil {
		t.Fatalf("collect: %v", gcErr)
	}
	return res, false
}

// forced sets up a race, forces an interleaving on it and runs it, again
// (up to forceTries times) while the collection stops on a lost lease
// before it was forced; each stopped run's cache must verify.
func forced(t *testing.T, open func(*testing.T) cache.Backend, force func(r *race, withMarkers bool) (pb, cb cache.Backend),
	withMarkers bool) (*race, cache.Result) {
	t.Helper()
	for try := 1; ; try++ {
		r := newRace(t, open(t), 6)
		pb, cb := force(r, withMarkers)
		res, lost := r.run(t, pb, cb)
		if !lost {
			return r, res
		}
		if withMarkers {
			verify(t, r.b, r.key, "after a lost lease")
		}
		if try == forceTries {
			t.Fatalf("the collection lost its lease in %d tries: the interleaving could not be forced", try)
		}
	}
}

// closureComplete fails unless every path of y's closure has its narinfo
// and NAR.
func (r *race) closureComplete(t *testing.T) {
	t.Helper()
	for _, p := range r.store.closure(t, r.y) {
		ni, err := cache.ReadNarInfo(context.Background(), r.b, p)
		if err != nil {
			t.Fatalf("after the push, %s: %v", p, err)
		}
		if !has(t, r.b, ni.URL) {
			t.Fatalf("after the push, the NAR of %s is missing", p)
		}
	}
}

// once returns a function that closes ch the first time it is called.
func once(ch chan struct{}) func() {
	var o sync.Once
	return func() { o.Do(func() { close(ch) }) }
}

func isDelete(op, key string) bool {
	return (op == "delete" || op == "deletemany") && !strings.HasPrefix(key, "gc/")
}

// skipMarkPublishSweep forces the interleaving grace periods cannot save:
// the pusher finds the shared old paths present and skips them; the
// collection marks before y's narinfo exists; y's narinfo is written; the
// collection deletes the old paths y references.
func skipMarkPublishSweep(r *race, withMarkers bool) (pb, cb cache.Backend) {
	checked, marked, published := make(chan struct{}), make(chan struct{}), make(chan struct{})
	closeChecked, closeMarked, closePublished := once(checked), once(marked), once(published)
	yKey := cache.NarInfoKey(r.y)
	pb = &hooked{Backend: r.b,
		before: func(op, key string) {
			if op == "put" && key == yKey {
				<-marked
			}
		},
		after: func(op, key string) {
			switch {
			case op == "stat" && strings.HasSuffix(key, ".narinfo"):
				closeChecked() // the existence check has seen the cache
			case op == "put" && key == yKey:
				closePublished()
			}
		}}
	if !withMarkers {
		pb = withoutMarkers(pb)
	}
	cb = &hooked{Backend: r.b, before: func(op, key string) {
		switch {
		case op == "put" && key == cache.GCRunningKey:
			<-checked
		case isDelete(op, key):
			closeMarked()
			<-published
		}
	}}
	return pb, cb
}

// narSweptBeforePublish: the pusher uploads y's NAR, a whole collection
// runs (y's NAR has no narinfo yet and is older than its start), then the
// pusher writes y's narinfo.
func narSweptBeforePublish(r *race, withMarkers bool) (pb, cb cache.Backend) {
	narDone, collected := make(chan struct{}), make(chan struct{})
	closeNarDone, closeCollected := once(narDone), once(collected)
	yKey := cache.NarInfoKey(r.y)
	pb = &hooked{Backend: r.b, before: func(op, key string) {
		if op == "put" && key == yKey {
			closeNarDone()
			<-collected
		}
	}}
	if !withMarkers {
		pb = withoutMarkers(pb)
	}
	cb = &hooked{Backend: r.b,
		before: func(op, key string) {
			if op == "get" && key == "nix-cache-info" {
				<-narDone
				time.Sleep(5 * time.Millisecond) // the NAR is older than the start
			}
		},
		after: func(op, key string) {
			if op == "delete" && key == cache.GCRunningKey {
				closeCollected()
			}
		}}
	return pb, cb
}

// TestPushRacesCollection forces the worst interleavings of a push and a
// collection, then runs them together many times with random delays at
// every call: after every run the cache verifies and the pushed closure is
// complete. The same interleavings with a pusher that ignores the markers
// break the cache, so the test can tell.
func TestPushRacesCollection(t *testing.T) {
	interleavings := []struct {
		name  string
		force func(r *race, withMarkers bool) (pb, cb cache.Backend)
	}{
		{"skip-mark-publish-sweep", skipMarkPublishSweep},
		{"nar-swept-before-publish", narSweptBeforePublish},
	}
	for _, bc := range []backendCase{fileCase(), s3Case()} {
		t.Run(bc.name, func(t *testing.T) {
			for _, il := range interleavings {
				t.Run(il.name, func(t *testing.T) {
					r, res := forced(t, bc.open, il.force, true)
					verify(t, r.b, r.key, "after the race")
					r.closureComplete(t)
					if res.Repaired == 0 {
						t.Errorf("the push repaired nothing; the interleaving was not forced")
					}

					r, _ = forced(t, bc.open, il.force, false)
					rep, err := cache.Verify(context.Background(), r.b, []cache.PublicKey{r.key.Public()}, cache.VerifyOptions{Quick: true})
					if err != nil {
						t.Fatal(err)
					}
					if rep.OK() {
						t.Errorf("without the markers the race left a consistent cache: the test cannot tell")
					}
				})
			}

			runs := map[string]int{"file": 24, "s3": 8}[bc.name]
			repaired, lost := 0, 0
			for i := range runs {
				r := newRace(t, bc.open(t), 8)
				jitter := func(op, key string) {
					time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
				}
				delay := time.Duration(rand.IntN(40)) * time.Millisecond
				late := func() hooked { // starts at a random point of the other
					start := sync.OnceFunc(func() { time.Sleep(delay) })
					return hooked{Backend: r.b, before: func(op, key string) { start(); jitter(op, key) }}
				}
				pb, cb := late(), hooked{Backend: r.b, before: jitter}
				if i%2 == 1 {
					pb, cb = cb, late()
				}
				res, leaseLost := r.run(t, &pb, &cb)
				if leaseLost {
					lost++
				}
				verify(t, r.b, r.key, "after a random race")
				if has(t, r.b, cache.NarInfoKey(r.y)) {
					r.closureComplete(t)
				}
				if res.Repaired > 0 {
					repaired++
				}
			}
			t.Logf("%d random races (%d collections stopped on a lost lease); in %d a collection removed part of the push, which the pusher repaired", runs, lost, repaired)
		})
	}
}
