package s3

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// defaultEndpoint is used when the URL names no endpoint.
const defaultEndpoint = "https://s3.amazonaws.com"

// config is what an s3:// URL says, before any credential is read.
type config struct {
	bucket   string
	prefix   string // "" or ending in "/"
	host     string // host[:port] of the endpoint
	secure   bool   // https
	region   string // "" lets minio-go ask the service
	profile  string // profile in the shared credentials file
	keyFiles keyFiles
}

// keyFiles names files holding a credential each (the *-file query
// parameters). All empty when the URL names none.
type keyFiles struct {
	accessKey, secretKey, sessionToken string
}

// params are the query parameters an s3:// URL may carry.
var params = []string{
	"endpoint", "scheme", "region", "prefix", "profile",
	"access-key-file", "secret-key-file", "session-token-file",
}

// parseURL reads s3://bucket[/prefix]?endpoint=...&region=...&prefix=...
//
// endpoint is a URL (http:// or https://, which decides TLS) or, as in Nix's
// own s3 store URLs, a bare host[:port] whose scheme comes from scheme=
// (https by default). Credentials never come from the URL itself: only the
// names of files that hold them do.
func parseURL(u *url.URL) (config, error) {
	if u.Scheme != "s3" {
		return config{}, fmt.Errorf("scheme %q is not s3", u.Scheme)
	}
	if u.User != nil {
		// Not echoed: the user info may hold a secret.
		return config{}, errors.New("credentials in the URL are not accepted: use the environment or access-key-file/secret-key-file")
	}
	cfg := config{bucket: u.Host}
	if err := s3utils.CheckValidBucketNameStrict(cfg.bucket); err != nil {
		return config{}, fmt.Errorf("bucket %q: %w", cfg.bucket, err)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return config{}, fmt.Errorf("query: %w", err)
	}
	for name, vs := range q {
		if !slices.Contains(params, name) {
			return config{}, fmt.Errorf("unknown parameter %q (known: %s)", name, strings.Join(params, ", "))
		}
		if len(vs) != 1 {
			return config{}, fmt.Errorf("parameter %q given %d times", name, len(vs))
		}
	}

	prefix := strings.Trim(u.Path, "/")
	if p := strings.Trim(q.Get("prefix"), "/"); p != "" {
		if prefix != "" {
			return config{}, errors.New("prefix given both as a path and as prefix=")
		}
		prefix = p
	}
	if prefix != "" {
		cfg.prefix = prefix + "/"
	}

	endpoint := q.Get("endpoint")
	if endpoint == "" {
		endpoint = defaultEndpoint
	}
	if cfg.host, cfg.secure, err = parseEndpoint(endpoint, q.Get("scheme")); err != nil {
		return config{}, err
	}

	cfg.region = q.Get("region")
	cfg.profile = q.Get("profile")
	cfg.keyFiles = keyFiles{
		accessKey:    q.Get("access-key-file"),
		secretKey:    q.Get("secret-key-file"),
		sessionToken: q.Get("session-token-file"),
	}
	return cfg, nil
}

// parseEndpoint splits endpoint into host[:port] and whether to use TLS.
func parseEndpoint(endpoint, scheme string) (host string, secure bool, err error) {
	if !strings.Contains(endpoint, "://") {
		if scheme == "" {
			scheme = "https"
		}
		endpoint = scheme + "://" + endpoint
	} else if scheme != "" {
		return "", false, errors.New("scheme= given with an endpoint that has its own scheme")
	}
	e, err := url.Parse(endpoint)
	if err != nil {
		return "", false, fmt.Errorf("endpoint: %w", err)
	}
	if e.User != nil {
		return "", false, errors.New("endpoint: credentials in the URL are not accepted")
	}
	switch e.Scheme {
	case "http":
	case "https":
		secure = true
	default:
		return "", false, fmt.Errorf("endpoint %s: scheme must be http or https", e.Redacted())
	}
	if e.Host == "" || e.Hostname() == "" {
		return "", false, fmt.Errorf("endpoint %s: no host", e.Redacted())
	}
	if (e.Path != "" && e.Path != "/") || e.RawQuery != "" || e.Fragment != "" {
		return "", false, fmt.Errorf("endpoint %s: want scheme://host[:port] only", e.Redacted())
	}
	return e.Host, secure, nil
}

// endpointURL is the endpoint as a URL, for messages.
func (c config) endpointURL() string {
	scheme := "http"
	if c.secure {
		scheme = "https"
	}
	return scheme + "://" + c.host
}

// String is the URL the backend was opened with, normalised, without
// credential file names.
func (c config) String() string {
	q := url.Values{}
	q.Set("endpoint", c.endpointURL())
	if c.region != "" {
		q.Set("region", c.region)
	}
	if c.prefix != "" {
		q.Set("prefix", strings.TrimSuffix(c.prefix, "/"))
	}
	// url.Values.Encode escapes "://"; unescaped, the name reads as typed.
	enc, _ := url.QueryUnescape(q.Encode())
	return "s3://" + c.bucket + "?" + enc
}
