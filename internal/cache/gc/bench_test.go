package gc_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
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
	envBenchIndex = "GC_BENCH_INDEX" // the collector's index file, if any
	envBenchDry   = "GC_BENCH_DRY"   // "1": a dry run
	// GC_BENCH_CPUPROFILE, set by whoever runs the benchmark, names a file
	// for the collecting child's CPU profile (go tool pprof reads it).
	envBenchProfile = "GC_BENCH_CPUPROFILE"
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
	// Each phase's time goes to stderr, for the benchmark's log.
	phase, since := "", time.Now()
	c := &gc.Collector{Backend: b, Trusted: []cache.PublicKey{pub}, Index: os.Getenv(envBenchIndex), DryRun: os.Getenv(envBenchDry) == "1", Progress: func(p gc.Progress) {
		if p.Phase != phase {
			if phase != "" {
				fmt.Fprintf(os.Stderr, "phase %s: %s\n", phase, time.Since(since).Round(time.Millisecond))
			}
			phase, since = p.Phase, time.Now()
		}
	}}
	if name := os.Getenv(envBenchProfile); name != "" {
		f, err := os.Create(name)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
	}
	res, err := c.Collect(context.Background(), strings.Fields(string(roots)))
	pprof.StopCPUProfile()
	fmt.Fprintf(os.Stderr, "phase %s: %s\n", phase, time.Since(since).Round(time.Millisecond))
	if res != nil && c.Index != "" {
		fmt.Fprintf(os.Stderr, "narinfos from the index: %d\n", res.Indexed)
	}
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

// object is one object of a synthetic cache.
type object struct {
	key  string
	body []byte
}

// synthCache makes n signed narinfos and as many small NARs: groups of
// 1,000 paths in 20 layers of 50, each path referencing three paths of the
// layer below (a reference depth of 20, as in a system closure). It
// returns the objects (nix-cache-info first), the tops of every other group
// (the roots: about half of the paths stay) and the key.
func synthCache(tb testing.TB, n int) ([]object, []string, cache.SecretKey) {
	tb.Helper()
	key, err := cache.GenerateKey("farm-bench-1")
	if err != nil {
		tb.Fatal(err)
	}
	const group, layer = 1000, 50
	paths := make([]string, n)
	for i := range paths {
		var h [20]byte
		_, _ = rand.Read(h[:])
		paths[i] = cache.StoreDir + "/" + nixbase32.EncodeToString(h[:]) + "-bench-" + strconv.Itoa(i)
	}
	objs := make([]object, 0, 2*n+1)
	objs = append(objs, object{"nix-cache-info", []byte(cache.CacheInfo)})
	var roots []string
	for i := range n {
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
			tb.Fatal(err)
		}
		objs = append(objs, object{ni.URL, nar}, object{cache.NarInfoKey(paths[i]), []byte(ni.String())})
		if i%group >= group-layer && (i/group)%2 == 0 { // the top layer of every other group
			roots = append(roots, paths[i])
		}
	}
	return objs, roots, key
}

// putEach writes objects one Put at a time, 32 at once, in order: a NAR
// before the narinfo that names it.
func putEach(tb testing.TB, b cache.Backend, objs []object) {
	tb.Helper()
	ctx := context.Background()
	if err := b.Put(ctx, objs[0].key, bytes.NewReader(objs[0].body), int64(len(objs[0].body))); err != nil {
		tb.Fatal(err)
	}
	pairs := objs[1:]
	err := parallel.ForEach(ctx, len(pairs)/2, 32, func(i int) error {
		for _, o := range pairs[2*i : 2*i+2] {
			if err := b.Put(ctx, o.key, bytes.NewReader(o.body), int64(len(o.body))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("fill the cache: %v", err)
	}
}

// putSnowball writes objects to a MinIO bucket in tar archives of 10,000
// that the server unpacks into objects (S3 "snowball" auto-extract): one
// request where putEach makes ten thousand. The objects are the same a Put
// writes; only the filling, which is not timed, is faster.
func putSnowball(tb testing.TB, srv *miniotest.Server, bucket string, objs []object) {
	tb.Helper()
	const chunk = 10_000
	err := parallel.ForEach(context.Background(), (len(objs)+chunk-1)/chunk, 2, func(c int) error {
		ch := make(chan minio.SnowballObject)
		go func() {
			defer close(ch)
			for _, o := range objs[c*chunk : min((c+1)*chunk, len(objs))] {
				ch <- minio.SnowballObject{Key: o.key, Size: int64(len(o.body)), Content: bytes.NewReader(o.body)}
			}
		}()
		err := srv.Client().PutObjectsSnowball(context.Background(), bucket, minio.SnowballOptions{InMemory: true}, ch)
		for range ch { // drain on error
		}
		return err
	})
	if err != nil {
		tb.Fatalf("fill the cache: %v", err)
	}
}

// BenchmarkCollect collects synthetic caches of 25,000 and 100,000 paths
// (about half of them garbage) on a directory and on MinIO, each in a child
// process, and reports its peak RSS (VmHWM) and CPU time beside the time.
//
//	go test -run '^$' -bench Collect -benchtime 1x ./internal/cache/gc/
func BenchmarkCollect(b *testing.B) {
	type target struct {
		name string
		// open makes an empty cache, fills it with objs and returns its
		// URL and the environment that opens it.
		open func(b *testing.B, objs []object) (string, []string)
	}
	targets := []target{
		{"file", func(b *testing.B, objs []object) (string, []string) {
			dir := b.TempDir()
			fb, err := cacheurl.Open(context.Background(), "file://"+dir, os.Getenv)
			if err != nil {
				b.Fatal(err)
			}
			putEach(b, fb, objs)
			return "file://" + dir, nil
		}},
		{"s3", func(b *testing.B, objs []object) (string, []string) {
			srv := miniotest.Start(b)
			bucket := srv.NewBucket(b)
			putSnowball(b, srv, bucket, objs)
			return srv.CacheURL(bucket), srv.Env()
		}},
	}
	// "-indexed": a dry run (not timed) wrote the collector's index first,
	// as the collection of the day before would have: the collection
	// reads only the narinfos that changed since, here none.
	for _, tg := range targets {
		for _, n := range []int{25_000, 100_000} {
			for _, indexed := range []bool{false, true} {
				name := tg.name
				if indexed {
					name += "-indexed"
				}
				b.Run(fmt.Sprintf("%s/paths=%d", name, n), func(b *testing.B) {
					benchCollect(b, tg.open, n, indexed)
				})
			}
		}
	}
}

// benchCollect fills a cache of n paths with open and collects it b.N
// times in a child process, after a dry run that writes the index if
// indexed.
func benchCollect(b *testing.B, open func(b *testing.B, objs []object) (string, []string), n int, indexed bool) {
	var rss int64
	var cpu time.Duration
	for range b.N {
		b.StopTimer()
		objs, roots, key := synthCache(b, n)
		filling := time.Now()
		url, extra := open(b, objs)
		b.Logf("filled the cache with %d narinfos and NARs in %s (not timed)", n, time.Since(filling).Round(time.Second))
		rootsFile := b.TempDir() + "/roots"
		if err := os.WriteFile(rootsFile, []byte(strings.Join(roots, "\n")), 0o644); err != nil {
			b.Fatal(err)
		}
		env := append(append(os.Environ(), extra...), envBenchURL+"="+url,
			envBenchKey+"="+key.Public().String(), envBenchRoots+"="+rootsFile)
		if indexed {
			env = append(env, envBenchIndex+"="+b.TempDir()+"/narinfo.index")
			dry := exec.Command(os.Args[0], "-test.run=^$")
			dry.Env = append(env, envBenchDry+"=1")
			prep := time.Now()
			if out, err := dry.CombinedOutput(); err != nil {
				b.Fatalf("dry run: %v\n%s", err, out)
			}
			b.Logf("a dry run wrote the index in %s (not timed)", time.Since(prep).Round(time.Second))
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = env
		start := time.Now()
		b.StartTimer()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		b.StopTimer()
		took := time.Since(start)
		if err != nil {
			b.Fatalf("collect: %v\n%s%s", err, out, stderr.Bytes())
		}
		b.Logf("%s", strings.TrimSpace(stderr.String()))
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
}
