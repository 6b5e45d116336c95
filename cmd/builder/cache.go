package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/cache/cacheurl"
	"github.com/homelab-farm/farm/internal/cli"
	"github.com/homelab-farm/farm/internal/config"
	"github.com/homelab-farm/farm/internal/httpsafe"
	"github.com/homelab-farm/farm/internal/httpserve"
	"github.com/homelab-farm/farm/internal/nix"
)

const cacheUsage = `usage: builder cache <push|verify|serve|gc> [flags]`

func runCache(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, cacheUsage)
		return cli.ErrUsage
	}
	switch args[0] {
	case "push":
		return runCachePush(ctx, args[1:], getenv, stdout, stderr)
	case "verify":
		return runCacheVerify(ctx, args[1:], getenv, stdout, stderr)
	case "serve":
		return runCacheServe(ctx, args[1:], getenv, stdout, stderr)
	case "gc":
		return runCacheGC(ctx, args[1:], getenv, stdout, stderr)
	}
	fmt.Fprintln(stderr, cacheUsage)
	return cli.Usagef("unknown cache command %q", args[0])
}

func runCachePush(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("builder cache push", "BUILDER", getenv, stdout, stderr)
	cacheURL := fs.String("cache", "", "cache `URL`: file:///dir or s3://bucket?endpoint=...&region=...")
	keyFile := fs.SecretFile("signing-key-file", "`file` holding the cache's Nix secret key")
	compression := fs.String("compression", "zstd", "NAR compression: zstd, xz or none")
	jobs := fs.Int("jobs", 0, "paths uploaded at once (0: 16; at most two large NARs stream at once)")
	budget := fs.Duration("retry-budget", 2*time.Minute, "how long one object's upload is retried")
	quiet := fs.Bool("quiet", false, "print only the summary")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("cache push: no store paths given")
	}
	comp, err := cache.ParseCompression(*compression)
	if err != nil {
		return fmt.Errorf("cache push: %w", err)
	}
	key, err := cache.LoadSecretKeyFile(*keyFile)
	if err != nil {
		return fmt.Errorf("cache push: %w", err)
	}
	paths := make([]string, 0, fs.NArg())
	for _, p := range fs.Args() {
		sp, err := nix.StorePath(p)
		if err != nil {
			return fmt.Errorf("cache push: %w", err)
		}
		paths = append(paths, sp)
	}
	store := &nix.Client{StoreDB: nix.DefaultStoreDB}
	closure, err := store.PathInfo(ctx, paths...)
	if err != nil {
		return fmt.Errorf("cache push: %w", err)
	}
	backend, err := cacheurl.Open(ctx, *cacheURL, getenv)
	if err != nil {
		return fmt.Errorf("cache push: %w", err)
	}

	var done atomic.Int64
	total := len(closure)
	start := time.Now()
	p := &cache.Pusher{
		Backend:     backend,
		Key:         key,
		Store:       knownClosure{closure},
		Compression: comp,
		Jobs:        *jobs,
		Retry:       cache.Retry{Budget: *budget},
		Log:         slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Progress:    func(cache.Event) { done.Add(1) },
	}
	stopProgress := func() {}
	if !*quiet {
		stopProgress = ticker(time.Second, func() {
			n := p.Streamed()
			fmt.Fprintf(stderr, "pushing: %d/%d paths done, %s streamed (%s/s)\n", done.Load(), total,
				humanBytes(n), humanBytes(int64(float64(n)/time.Since(start).Seconds())))
		})
	}
	res, err := p.Push(ctx, paths...)
	stopProgress()
	if err != nil {
		return fmt.Errorf("cache push to %s: %w", backend, err)
	}
	rate := float64(res.NarBytes) / max(res.Duration.Seconds(), 1e-9)
	fmt.Fprintf(stdout, "pushed %d of %d paths to %s (%d already there): %s NAR, %s %s, in %s (%s/s)\n",
		res.Uploaded, res.Paths, backend, res.Skipped, humanBytes(res.NarBytes), humanBytes(res.FileBytes),
		comp, res.Duration.Round(time.Millisecond), humanBytes(int64(rate)))
	return nil
}

// knownClosure is a cache.Store that answers with a closure already queried.
type knownClosure struct{ infos []nix.PathInfo }

func (k knownClosure) PathInfo(context.Context, ...string) ([]nix.PathInfo, error) {
	return k.infos, nil
}

func runCacheVerify(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("builder cache verify", "BUILDER", getenv, stdout, stderr)
	cacheURL := fs.String("cache", "", "cache `URL`")
	var trusted []string
	fs.StringsVar(&trusted, "trusted-key", cli.Fields, "space-separated", "public `key` (name:base64) whose signatures are valid; repeatable")
	quick := fs.Bool("quick", false, "check NAR sizes only, without downloading and hashing them")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := fs.NoArgs(); err != nil {
		return err
	}
	if len(trusted) == 0 {
		return errors.New("cache verify: no --trusted-key given")
	}
	var keys []cache.PublicKey
	for _, s := range trusted {
		k, err := cache.ParsePublicKey(s)
		if err != nil {
			return fmt.Errorf("cache verify: trusted key %q: %w", s, err)
		}
		keys = append(keys, k)
	}
	backend, err := cacheurl.Open(ctx, *cacheURL, getenv)
	if err != nil {
		return fmt.Errorf("cache verify: %w", err)
	}
	rep, err := cache.Verify(ctx, backend, keys, cache.VerifyOptions{Quick: *quick})
	if err != nil {
		return fmt.Errorf("cache verify %s: %w", backend, err)
	}
	for _, p := range rep.Problems {
		fmt.Fprintln(stdout, p)
	}
	fmt.Fprintf(stdout, "%s: %d paths, %s NAR in %s of files, %d problems\n",
		backend, rep.NarInfos, humanBytes(rep.NarBytes), humanBytes(rep.FileBytes), len(rep.Problems))
	if !rep.OK() {
		return fmt.Errorf("cache %s is inconsistent", backend)
	}
	return nil
}

func runCacheServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("builder cache serve", "BUILDER", getenv, stdout, stderr)
	cacheURL := fs.String("cache", "", "cache `URL`")
	listen := fs.String("listen", "127.0.0.1:8080", "`address` to serve on")
	stall := fs.Duration("stall-timeout", config.DefaultStallTimeout,
		"drop a client when one write to it blocks this `long`; a download as a whole has no limit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := fs.NoArgs(); err != nil {
		return err
	}
	if *stall <= 0 {
		return errors.New("cache serve: --stall-timeout must be positive")
	}
	backend, err := cacheurl.Open(ctx, *cacheURL, getenv)
	if err != nil {
		return fmt.Errorf("cache serve: %w", err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("cache serve: %w", err)
	}
	fmt.Fprintf(stdout, "serving %s at http://%s/nix-cache/\n", backend, ln.Addr())
	mux := http.NewServeMux()
	mux.Handle("/nix-cache/", cacheHandler(backend, *stall))
	return httpserve.Serve(ctx, ln, httpsafe.NoSniff(mux), httpserve.Options{})
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// ticker calls f every interval until the returned stop is called.
func ticker(interval time.Duration, f func()) (stop func()) {
	t := time.NewTicker(interval)
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				f()
			}
		}
	}()
	return func() { t.Stop(); close(quit); <-finished }
}

// cacheHandler serves the cache read-only under /nix-cache/.
func cacheHandler(b cache.Backend, stall time.Duration) http.Handler {
	return http.StripPrefix("/nix-cache", cache.NewHandlerWith(b, cache.HandlerOptions{StallTimeout: stall}))
}
