package s3

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/homelab-farm/farm/internal/secretfile"
	"github.com/minio/minio-go/v7/pkg/credentials"
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

// creds are the credentials a backend signs with, and where they came from
// (for messages: a source never includes the secret itself; "" for none).
type creds struct {
	provider *credentials.Credentials
	source   string
}

// resolveCreds finds credentials, first match wins:
//
//  1. files named by access-key-file / secret-key-file (session-token-file) in the URL;
//  2. files named by AWS_ACCESS_KEY_ID_FILE / AWS_SECRET_ACCESS_KEY_FILE (AWS_SESSION_TOKEN_FILE);
//  3. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (AWS_SESSION_TOKEN);
//  4. the shared credentials file: AWS_SHARED_CREDENTIALS_FILE or
//     ~/.aws/credentials, profile= or AWS_PROFILE or "default";
//  5. none: anonymous requests (enough to read a public bucket).
//
// A half-given pair, an unreadable or empty file, or an explicitly named
// shared credentials file or profile that yields nothing is an error.
func resolveCreds(cfg config, getenv func(string) string) (creds, error) {
	if f := cfg.keyFiles; f != (keyFiles{}) {
		return staticFromFiles(f, "access-key-file", "secret-key-file")
	}
	if f := (keyFiles{
		accessKey:    getenv("AWS_ACCESS_KEY_ID_FILE"),
		secretKey:    getenv("AWS_SECRET_ACCESS_KEY_FILE"),
		sessionToken: getenv("AWS_SESSION_TOKEN_FILE"),
	}); f != (keyFiles{}) {
		return staticFromFiles(f, "AWS_ACCESS_KEY_ID_FILE", "AWS_SECRET_ACCESS_KEY_FILE")
	}
	id, secret := getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY")
	switch {
	case id != "" && secret != "":
		return creds{
			provider: credentials.NewStaticV4(id, secret, getenv("AWS_SESSION_TOKEN")),
			source:   "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
		}, nil
	case id != "":
		return creds{}, errors.New("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not")
	case secret != "":
		return creds{}, errors.New("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not")
	}
	return sharedFile(cfg, getenv)
}

// staticFromFiles reads a key pair (and optional session token) from files.
// idName and secretName say where the file names came from.
func staticFromFiles(f keyFiles, idName, secretName string) (creds, error) {
	switch {
	case f.accessKey == "":
		return creds{}, fmt.Errorf("%s is given but %s is not", secretName, idName)
	case f.secretKey == "":
		return creds{}, fmt.Errorf("%s is given but %s is not", idName, secretName)
	}
	id, err := readSecretFile(f.accessKey)
	if err != nil {
		return creds{}, err
	}
	secret, err := readSecretFile(f.secretKey)
	if err != nil {
		return creds{}, err
	}
	var token string
	if f.sessionToken != "" {
		if token, err = readSecretFile(f.sessionToken); err != nil {
			return creds{}, err
		}
	}
	return creds{
		provider: credentials.NewStaticV4(id, secret, token),
		source:   fmt.Sprintf("files %s and %s", f.accessKey, f.secretKey),
	}, nil
}

// readSecretFile returns the one line of a file holding a credential.
// Errors name the file, never its content.
func readSecretFile(name string) (string, error) {
	return secretfile.ReadLine(name, "credential")
}

// sharedFile uses the AWS shared credentials file when there is one.
func sharedFile(cfg config, getenv func(string) string) (creds, error) {
	name := getenv("AWS_SHARED_CREDENTIALS_FILE")
	explicit := name != "" || cfg.profile != ""
	if name == "" {
		home := getenv("HOME")
		if home == "" {
			if explicit {
				return creds{}, errors.New("profile= given but HOME and AWS_SHARED_CREDENTIALS_FILE are unset")
			}
			return anonymous(), nil
		}
		name = filepath.Join(home, ".aws", "credentials")
	}
	profile := cfg.profile
	if profile == "" {
		profile = getenv("AWS_PROFILE")
		explicit = explicit || profile != ""
	}
	if profile == "" {
		profile = "default"
	}

	if _, err := os.Stat(name); errors.Is(err, os.ErrNotExist) && !explicit {
		return anonymous(), nil
	}
	// Read it here so that an unreadable file fails Open with its name; the
	// parse below runs on every refresh inside minio-go.
	if _, err := os.ReadFile(name); err != nil {
		return creds{}, fmt.Errorf("read shared credentials file: %w", err)
	}
	p := credentials.NewFileAWSCredentials(name, profile)
	v, err := p.Get()
	if err != nil || v.AccessKeyID == "" {
		// The parser's message may quote a line of the file, so it is
		// not passed on.
		return creds{}, fmt.Errorf("shared credentials file %s: no usable credentials for profile %q", name, profile)
	}
	return creds{provider: p, source: fmt.Sprintf("shared credentials file %s (profile %q)", name, profile)}, nil
}

func anonymous() creds {
	return creds{provider: credentials.NewStatic("", "", "", credentials.SignatureAnonymous)}
}
