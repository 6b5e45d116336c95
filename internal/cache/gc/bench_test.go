package gc_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nix-community/go-nix/pkg/nixbase32"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/cache/cacheurl"
	"github.com/homelab-farm/farm/internal/cache/gc"
	"github.com/homelab-farm/farm/internal/parallel"
	"github.com/homelab-farm/farm/internal/testenv/miniotest"
)

// The benchmark collects in a child process (this test binary again), so
// that its peak RSS is the collection's alone.
const (
	envBenchURL   = "GC_BENCH_URL"
	envBenchKey   = "GC_BENCH_KEY"
	envBenchRoots = "GC_BENCH_ROOTS" // a file of store paths, one a line
)

func benchHelper() {
	pub, err := cache.ParsePublicKey(os.Getenv(envBenchKey))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	roots, err := os.ReadFile(os.Getenv(envBenchRoots))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	b, err := cacheurl.Open(context.Background(), os.Getenv(envBenchURL), os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	c := &gc.Collector{Backend: b, Trusted: []cache.PublicKey{pub}}
	res, err := c.Collect(context.Background(), strings.Fields(string(roots)))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(4)
	}
	fmt.Printf("%d %d %d %d %d\n", res.KeptNarInfos.Objects, res.NarInfos.Objects, res.KeptNars.Objects, res.Nars.Objects, peakRSS())
	os.Exit(0)
}

// peakRSS is this process's peak resident set in bytes (VmHWM). The
// rusage of a child is no good: after a vfork-style exec it counts the
// parent's pages too.
func peakRSS() int64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return -1
}

// synthCache fills b with n signed narinfos and as many small NARs: groups of
// 1,000 paths in 20 layers of 50, each path referencing three paths of the
// layer below (a reference depth of 20, as in a system closure). It
// returns the tops of every other group (the roots: about half of the
// paths stay) and the key.
func synthCache(tb testing.TB, b cache.Backend, n int) ([]string, cache.SecretKey) {
	tb.Helper()
	ctx := context.Background()
	key, err := cache.GenerateKey("farm-bench-1")
	if err != nil {
		tb.Fatal(err)
	}
	if err := b.Put(ctx, "nix-cache-info", strings.NewReader(cache.CacheInfo), -1); err != nil {
		tb.Fatal(err)
	}
	const group, layer = 1000, 50
	paths := make([]string, n)
	for i := range paths {
		var h [20]byte
		_, _ = rand.Read(h[:])
		paths[i] = cache.StoreDir + "/" + nixbase32.EncodeToString(h[:]) + "-bench-" + strconv.Itoa(i)
	}
	var mu sync.Mutex
	var roots []string
	err = parallel.ForEach(ctx, n, 32, func(i int) error {
		var refs []string
		if j := i % group; j >= layer { // j's layer references the one below
			below := i - j + (j/layer-1)*layer
			for _, k := range []int{j % layer, (j * 7) % layer, (j*13 + 5) % layer} {
				if r := paths[below+k]; !slices.Contains(refs, r) {
					refs = append(refs, r)
				}
			}
		}
		var nh [32]byte
		_, _ = rand.Read(nh[:])
		nar := nh[:] // a small NAR object: 32 bytes
		ni := &cache.NarInfo{StorePath: paths[i], URL: "nar/" + nixbase32.EncodeToString(nh[:]) + ".nar",
			Compression: cache.None, NarHash: "sha256:" + nixbase32.EncodeToString(nh[:]), NarSize: uint64(len(nar)),
			FileHash: "sha256:" + nixbase32.EncodeToString(nh[:]), FileSize: uint64(len(nar)), References: refs}
		if err := ni.Sign(key); err != nil {
			return err
		}
		if err := b.Put(ctx, ni.URL, bytes.NewReader(nar), int64(len(nar))); err != nil {
			return err
		}
		text := ni.String()
		if err := b.Put(ctx, cache.NarInfoKey(paths[i]), strings.NewReader(text), int64(len(text))); err != nil {
			return err
		}
		if i%group >= group-layer && (i/group)%2 == 0 { // the top layer of every other group
			mu.Lock()
			roots = append(roots, paths[i])
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("fill the cache: %v", err)
	}
	return roots, key
}

// BenchmarkCollect collects synthetic caches of 25,000 and 100,000 paths
// (about half of them garbage) on a directory and on MinIO, each in a child
// process, and reports its peak RSS (VmHWM) and CPU time beside the time.
//
//	go test -run '^$' -bench Collect -benchtime 1x ./internal/cache/gc/
func BenchmarkCollect(b *testing.B) {
	type target struct {
		name string
		open func(b *testing.B) (cache.Backend, string, []string)
	}
	targets := []target{
		{"file", func(b *testing.B) (cache.Backend, string, []string) {
			dir := b.TempDir()
			fb, err := cacheurl.Open(context.Background(), "file://"+dir, os.Getenv)
			if err != nil {
				b.Fatal(err)
			}
			return fb, "file://" + dir, nil
		}},
		{"s3", func(b *testing.B) (cache.Backend, string, []string) {
			srv := miniotest.Start(b)
			bucket := srv.NewBucket(b)
			return openS3(b, srv, bucket), srv.CacheURL(bucket), srv.Env()
		}},
	}
	for _, tg := range targets {
		for _, n := range []int{25_000, 100_000} {
			b.Run(fmt.Sprintf("%s/paths=%d", tg.name, n), func(b *testing.B) {
				var rss int64
				var cpu time.Duration
				for range b.N {
					b.StopTimer()
					be, url, extra := tg.open(b)
					filling := time.Now()
					roots, key := synthCache(b, be, n)
					b.Logf("filled the cache with %d narinfos and NARs in %s (not timed)", n, time.Since(filling).Round(time.Second))
					rootsFile := b.TempDir() + "/roots"
					if err := os.WriteFile(rootsFile, []byte(strings.Join(roots, "\n")), 0o644); err != nil {
						b.Fatal(err)
					}
					cmd := exec.Command(os.Args[0], "-test.run=^$")
					cmd.Env = append(append(os.Environ(), extra...), envBenchURL+"="+url,
						envBenchKey+"="+key.Public().String(), envBenchRoots+"="+rootsFile)
					start := time.Now()
					b.StartTimer()
					out, err := cmd.CombinedOutput()
					b.StopTimer()
					took := time.Since(start)
					if err != nil {
						b.Fatalf("collect: %v\n%s", err, out)
					}
					var kept, gone, keptNars, goneNars int
					var peak int64
					wantKept := len(roots) / 50 * 1000
					if _, err := fmt.Sscan(string(out), &kept, &gone, &keptNars, &goneNars, &peak); err != nil || kept != wantKept || gone != n-kept {
						b.Fatalf("collection kept %d and swept %d narinfos (%q), want %d and %d", kept, gone, out, wantKept, n-wantKept)
					}
					rss = max(rss, peak)
					cpu = max(cpu, cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
					b.Logf("%d paths: %d kept, %d swept (and as many NARs) in %s (CPU %s), peak RSS %.1f MiB",
						n, kept, gone, took.Round(time.Millisecond), cpu.Round(time.Millisecond), float64(rss)/(1<<20))
				}
				b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MiB")
				b.ReportMetric(cpu.Seconds(), "CPU-s")
			})
		}
	}
}
