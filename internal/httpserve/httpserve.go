package httpserve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Options tune the server; zero values take the defaults.
type Options struct {
	ReadHeaderTimeout time.Duration // default 10s
	ReadTimeout       time.Duration // whole request; 0: none (a handler bounds its body itself)
	WriteTimeout      time.Duration // whole answer; 0: none (streams set their own deadlines)
	IdleTimeout       time.Duration // default 2m
	MaxHeaderBytes    int           // default 64 KiB
	// Drain bounds the graceful shutdown once ctx ends; default 10s.
	Drain time.Duration
	// Log receives the server's own errors (TLS, malformed requests) at
	// warning level; nil discards them.
	Log *slog.Logger
}

// New returns the http.Server for h with opts.
func New(h http.Handler, opts Options) *http.Server {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: or(opts.ReadHeaderTimeout, 10*time.Second),
		ReadTimeout:       opts.ReadTimeout,
		WriteTimeout:      opts.WriteTimeout,
		IdleTimeout:       or(opts.IdleTimeout, 2*time.Minute),
		MaxHeaderBytes:    or(opts.MaxHeaderBytes, 64<<10),
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// Serve serves h on ln until ctx ends, then shuts down gracefully within
// opts.Drain: it stops accepting, and waits for requests in flight. It
// returns nil after a clean stop, the server's error if it failed first, or
// the shutdown's error when the drain timed out.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, opts Options) error {
	srv := New(h, opts)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	drainCtx, cancel := context.WithTimeout(context.Background(), or(opts.Drain, 10*time.Second))
	defer cancel()
	err := srv.Shutdown(drainCtx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
