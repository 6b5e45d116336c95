// Package failover sends HTTP requests to one of several equivalent base
// URLs — the instances of one farm's builder, which share their database —
// moving on to the next when one cannot be reached, times out or answers
// with a server error (5xx), and remembering the one that answered so that
// the next request starts there.
package failover

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// URLs is a flag.Value collecting base URLs: every value is split at
// commas, so a flag given several times and a comma-separated list (or
// both) add up.
type URLs []string

// Set adds the comma-separated URLs in s.
func (u *URLs) Set(s string) error {
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*u = append(*u, part)
		}
	}
	return nil
}

// String gives the URLs comma-separated.
func (u *URLs) String() string {
	if u == nil {
		return ""
	}
	return strings.Join(*u, ",")
}

// ErrNoURL is returned by New for an empty list.
var ErrNoURL = errors.New("no URL")

// Pool is a list of base URLs to send requests to. Its methods may be
// called from several goroutines at once.
type Pool struct {
	bases []string // without a trailing slash

	// Backoff is the pause before trying the next URL after a failure
	// within one Do; it doubles with every further URL, up to MaxBackoff.
	// 0: 200 ms and 5 s.
	Backoff, MaxBackoff time.Duration
	// HeaderTimeout bounds the wait for a response's headers on each URL
	// (the body may then take as long as it takes: a stream); 0: only the
	// client's own timeout.
	HeaderTimeout time.Duration
	// Log hears of every move to another URL; nil: nothing is logged.
	Log *slog.Logger

	mu  sync.Mutex
	cur int // the URL that answered last

	// pause replaces sleep in tests.
	pause func(ctx context.Context, d time.Duration) bool
}

// New checks urls — each an absolute http or https URL without query or
// fragment, no two the same — and returns a pool that starts with the
// first.
func New(urls []string) (*Pool, error) {
	if len(urls) == 0 {
		return nil, ErrNoURL
	}
	p := &Pool{}
	seen := map[string]bool{}
	for _, s := range urls {
		u, err := url.Parse(s)
		if err == nil && u.User != nil {
			return nil, errors.New("a URL with credentials is refused (not shown here)")
		}
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("%q is not an absolute http(s) URL without query or fragment", s)
		}
		base := strings.TrimSuffix(u.String(), "/")
		if seen[base] {
			return nil, fmt.Errorf("%q is given twice", s)
		}
		seen[base] = true
		p.bases = append(p.bases, base)
	}
	return p, nil
}

// URLs returns the base URLs in the order given.
func (p *Pool) URLs() []string { return append([]string(nil), p.bases...) }

// Current is the base URL the next request starts with.
func (p *Pool) Current() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.bases[p.cur]
}

// Skip makes the next request start with the URL after base, if base is
// the one it would start with: a caller whose response from base broke
// off (a stream cut, a read timing out) moves on as Do does on a failed
// request.
func (p *Pool) Skip(base string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bases[p.cur] == base && len(p.bases) > 1 {
		p.cur = (p.cur + 1) % len(p.bases)
		if p.Log != nil {
			p.Log.Warn("builder broke off; the next request goes to the next", "failed", base, "next", p.bases[p.cur])
		}
	}
}

// Do sends the request build makes for a base URL, starting with the URL
// that answered last and trying each of the others once, in order, after a
// connection error, a timeout or a 5xx answer, with a pause (Backoff,
// doubling) before each move. The first URL that answers below 500 is
// remembered and its response returned. If every URL fails, the last 5xx
// response is returned as it is (the caller reads its status as with a
// single URL); failing that, the last error. build is called once per URL
// tried; it must make a fresh request (and body) each time. A done ctx ends
// Do with ctx's error.
func (p *Pool) Do(ctx context.Context, client *http.Client, build func(base string) (*http.Request, error)) (*http.Response, error) {
	p.mu.Lock()
	start := p.cur
	p.mu.Unlock()
	wait := p.backoff()
	var lastErr error
	for k := range p.bases {
		i := (start + k) % len(p.bases)
		base := p.bases[i]
		if k > 0 {
			if p.Log != nil {
				p.Log.Warn("builder failed; trying the next", "failed", p.bases[(i+len(p.bases)-1)%len(p.bases)], "next", base, "err", lastErr, "wait", wait.String())
			}
			pause := p.pause
			if pause == nil {
				pause = sleep
			}
			if !pause(ctx, wait) {
				return nil, ctx.Err()
			}
			wait = min(2*wait, p.maxBackoff())
		}
		resp, err := p.send(ctx, client, base, build)
		if ctx.Err() != nil {
			if resp != nil {
				resp.Body.Close()
			}
			return nil, ctx.Err()
		}
		switch {
		case err != nil:
			lastErr = err
			continue
		case resp.StatusCode >= 500 && k < len(p.bases)-1:
			lastErr = fmt.Errorf("%s answered %s", base, resp.Status)
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			continue
		case resp.StatusCode >= 500:
			return resp, nil // the last one: the caller reads the status
		}
		if i != start {
			p.mu.Lock()
			p.cur = i
			p.mu.Unlock()
			if p.Log != nil {
				p.Log.Info("builder answered; staying with it", "builder", base)
			}
		}
		return resp, nil
	}
	if len(p.bases) > 1 {
		return nil, fmt.Errorf("none of %d builders answered, the last: %w", len(p.bases), lastErr)
	}
	return nil, lastErr
}

// send makes and sends one request to base, bounding the wait for its
// headers by HeaderTimeout.
func (p *Pool) send(ctx context.Context, client *http.Client, base string, build func(string) (*http.Request, error)) (*http.Response, error) {
	req, err := build(base)
	if err != nil {
		return nil, err
	}
	if p.HeaderTimeout <= 0 {
		return client.Do(req.WithContext(ctx))
	}
	rctx, cancel := context.WithCancel(ctx)
	timer := time.AfterFunc(p.HeaderTimeout, cancel)
	resp, err := client.Do(req.WithContext(rctx))
	if !timer.Stop() { // it fired: the request is cancelled
		if resp != nil {
			resp.Body.Close()
		}
		cancel()
		return nil, fmt.Errorf("%s: no answer within %v", base, p.HeaderTimeout)
	}
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = cancelOnClose{resp.Body, cancel}
	return resp, nil
}

// cancelOnClose releases a request's context when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

func (p *Pool) backoff() time.Duration {
	if p.Backoff > 0 {
		return p.Backoff
	}
	return 200 * time.Millisecond
}

func (p *Pool) maxBackoff() time.Duration {
	if p.MaxBackoff > 0 {
		return p.MaxBackoff
	}
	return 5 * time.Second
}

// sleep waits d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
