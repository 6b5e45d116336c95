package cacheurl

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/cache/file"
	"github.com/homelab-farm/farm/internal/cache/s3"
)

// ErrUnknownScheme is returned for a URL that is neither file:// nor s3://.
var ErrUnknownScheme = errors.New("unknown cache URL scheme")

// Open returns the backend rawURL names. getenv supplies credentials (for S3:
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and their *_FILE forms).
func Open(ctx context.Context, rawURL string, getenv func(string) string) (cache.Backend, error) {
	if rawURL == "" {
		return nil, errors.New("no cache URL given")
	}
	if strings.HasPrefix(rawURL, "/") {
		return file.Open(rawURL)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("cache URL: %w", err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("cache URL %s: file URLs take an absolute path (file:///dir)", rawURL)
		}
		return file.Open(u.Path)
	case "s3":
		return s3.Open(ctx, u, getenv)
	}
	return nil, fmt.Errorf("%w %q in %s (want file:// or s3://)", ErrUnknownScheme, u.Scheme, redact(u))
}

func redact(u *url.URL) string {
	c := *u
	c.User = nil
	c.RawQuery = ""
	return c.String()
}
