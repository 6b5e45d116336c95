package notify

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/hashicorp/go-retryablehttp"
)

// Message is one notification.
type Message struct {
	Title    string
	Body     string
	Priority int      // 1 (min) to 5 (urgent); 0: the server's default (3)
	Tags     []string // ntfy tags; emoji short codes show as emoji
	// Click is the URL opened when the notification is tapped. Its
	// fragment may be a marker (see Ledger) that finds the message again.
	Click string
}

// Publisher delivers notifications. Publish may be called from several
// goroutines at once; it returns an error only once the message is known
// not to be delivered (after its own retries).
type Publisher interface {
	Publish(ctx context.Context, m Message) error
}

// Ledger is a record of the messages a Publisher delivered, read back when
// the outcome of a publish is lost: the process died after the server took
// the message and before the notifier's state reached the disk.
type Ledger interface {
	// Published reports whether a message whose Click URL has the fragment
	// marker was delivered at or after since (by the server's clock). An
	// error means it cannot tell; the caller decides whether to publish
	// again. It may be called from several goroutines at once.
	Published(ctx context.Context, marker string, since time.Time) (bool, error)
}

// Ntfy publishes to a topic of an ntfy server through its HTTP publish API:
// POST <server>/<topic> with the message as body and Title, Priority, Tags
// and Click headers.
type Ntfy struct {
	url   string
	token string
	http  *retryablehttp.Client // polls: retries anything retryable
	post  *retryablehttp.Client // publishes: retries only answers that say "not stored"
}

var (
	_ Publisher = (*Ntfy)(nil)
	_ Ledger    = (*Ntfy)(nil)
)

// NtfyOptions tune NewNtfy.
type NtfyOptions struct {
	Token    string        // access token; empty: anonymous
	RetryMax int           // retries after the first try; 0 means 5
	WaitMin  time.Duration // first backoff; 0 means 1 s
	WaitMax  time.Duration // longest backoff; 0 means 30 s
	Log      *slog.Logger
}

// NewNtfy returns a publisher to topic on the ntfy server at server. It
// retries connection errors, 429 and 5xx with exponential backoff.
func NewNtfy(server, topic string, o NtfyOptions) (*Ntfy, error) {
	if server == "" || topic == "" {
		return nil, fmt.Errorf("ntfy needs a server URL and a topic")
	}
	if strings.ContainsAny(topic, "/?#") {
		return nil, fmt.Errorf("ntfy topic %q: no slashes or query", topic)
	}
	c := retryablehttp.NewClient()
	c.HTTPClient.Timeout = 30 * time.Second
	c.RetryMax = cmp(o.RetryMax, 5)
	c.RetryWaitMin = cmp(o.WaitMin, time.Second)
	c.RetryWaitMax = cmp(o.WaitMax, 30*time.Second)
	c.Logger = nil
	if o.Log != nil {
		c.RequestLogHook = func(_ retryablehttp.Logger, _ *http.Request, attempt int) {
			if attempt > 0 {
				o.Log.Warn("ntfy: retrying publish", "attempt", attempt)
			}
		}
	}
	c.ErrorHandler = retryablehttp.PassthroughErrorHandler
	// A publish is retried here only when the server answered 429 or 5xx,
	// which it does without storing the message. A transport error after
	// the request went out is ambiguous (the message may be stored): it is
	// returned, and the notifier asks the message cache before trying again.
	post := retryablehttp.NewClient()
	post.HTTPClient = c.HTTPClient
	post.RetryMax, post.RetryWaitMin, post.RetryWaitMax = c.RetryMax, c.RetryWaitMin, c.RetryWaitMax
	post.Logger, post.RequestLogHook, post.ErrorHandler = c.Logger, c.RequestLogHook, c.ErrorHandler
	post.CheckRetry = func(ctx context.Context, resp *http.Response, err error) (bool, error) {
		if err != nil {
			return false, err
		}
		return retryablehttp.DefaultRetryPolicy(ctx, resp, nil)
	}
	return &Ntfy{url: strings.TrimSuffix(server, "/") + "/" + topic, token: o.Token, http: c, post: post}, nil
}

func cmp[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// ErrPermanent is wrapped by Publish's error when trying again cannot help:
// the server refused the message (a 4xx answer other than 408 and 429) or
// no valid request could be made of it.
var ErrPermanent = errors.New("the message cannot be published")

// Bounds of the header values Publish sends (in characters, before any
// encoding): ntfy shows short titles and tags, and a header carries no
// unbounded text from the event stream.
const (
	maxTitle = 200
	maxTag   = 64
	maxTags  = 8
	maxClick = 2048
	// maxPollBytes bounds the answer to one poll of the message cache.
	maxPollBytes = 16 << 20
)

// Publish sends m. Every header value goes through headerValue; the body
// is sent as it is.
func (n *Ntfy) Publish(ctx context.Context, m Message) error {
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, n.url, strings.NewReader(m.Body))
	if err != nil {
		return fmt.Errorf("ntfy request: %w: %w", ErrPermanent, err)
	}
	for k, v := range n.headers(m) {
		req.Header.Set(k, v)
	}
	for k, vs := range req.Header {
		for _, v := range vs {
			if !validHeaderValue(v) {
				// Only the token can get here: everything else is
				// sanitized.
				return fmt.Errorf("ntfy request: %w: header %s has a character HTTP does not allow", ErrPermanent, k)
			}
		}
	}
	resp, err := n.post.Do(req)
	if err != nil {
		return fmt.Errorf("ntfy publish: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch c := resp.StatusCode; {
	case c/100 == 2:
		return nil
	case c/100 == 4 && c != http.StatusRequestTimeout && c != http.StatusTooManyRequests:
		return fmt.Errorf("ntfy publish: %w: server answered %s", ErrPermanent, resp.Status)
	default:
		return fmt.Errorf("ntfy publish: server answered %s", resp.Status)
	}
}

// headers are the request headers that carry m (and the token) to ntfy.
func (n *Ntfy) headers(m Message) map[string]string {
	h := map[string]string{"Content-Type": "text/plain; charset=utf-8"}
	if t := headerValue(m.Title, maxTitle); t != "" {
		h["Title"] = t
	}
	if m.Priority >= 1 && m.Priority <= 5 {
		h["Priority"] = strconv.Itoa(m.Priority)
	}
	var tags []string
	for _, t := range m.Tags {
		// A comma would split one tag in two: ntfy separates them so.
		if t = headerValue(strings.ReplaceAll(t, ",", " "), maxTag); t != "" && len(tags) < maxTags {
			tags = append(tags, t)
		}
	}
	if len(tags) > 0 {
		h["Tags"] = strings.Join(tags, ",")
	}
	if c := headerValue(m.Click, maxClick); c != "" {
		h["Click"] = c
	}
	if n.token != "" {
		h["Authorization"] = "Bearer " + n.token
	}
	return h
}

// headerValue makes s fit for a request header: one line of at most max
// characters, without control characters (line breaks and tabs become
// spaces, invalid UTF-8 becomes U+FFFD), and, if anything is left beyond
// ASCII, RFC 2047-encoded (=?UTF-8?b?...?=), which ntfy decodes.
func headerValue(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	n := 0
	space := false
	for _, r := range s {
		if unicode.IsControl(r) || unicode.IsSpace(r) || r == '\u2028' || r == '\u2029' {
			space = b.Len() > 0
			continue
		}
		if n == max || (space && n+1 == max) {
			break
		}
		if space {
			b.WriteByte(' ')
			n++
		}
		space = false
		b.WriteRune(r)
		n++
	}
	return mime.BEncoding.Encode("UTF-8", b.String())
}

// validHeaderValue reports whether v may be sent as a header value: no
// control characters but the tab (RFC 9110).
func validHeaderValue(v string) bool {
	for i := range len(v) {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// errPollTooLong is returned for a poll answer longer than maxPollBytes.
var errPollTooLong = errors.New("answer longer than the bound")

// Published polls the topic's message cache (GET <server>/<topic>/json
// ?poll=1&since=<Unix seconds>, with the publishing token) for a message
// whose click link has the fragment marker. The cache is the only record:
// a server with the cache disabled, a token that may only write, or a
// message older than the server's cache duration (12 h by default) make it
// answer an error or false, and the caller then publishes again.
func (n *Ntfy) Published(ctx context.Context, marker string, since time.Time) (bool, error) {
	u := n.url + "/json?poll=1&since=" + strconv.FormatInt(since.Unix(), 10)
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, fmt.Errorf("ntfy poll request: %w", err)
	}
	if n.token != "" {
		req.Header.Set("Authorization", "Bearer "+n.token)
	}
	resp, err := n.http.Do(req)
	if err != nil {
		return false, fmt.Errorf("ntfy poll: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return false, fmt.Errorf("ntfy poll: server answered %s", resp.Status)
	}
	// The answer is read up to a bound: the messages of a topic since a
	// few minutes before a publish are far fewer.
	body := &io.LimitedReader{R: resp.Body, N: maxPollBytes + 1}
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if body.N == 0 {
			return false, fmt.Errorf("ntfy poll: %w (%d bytes)", errPollTooLong, maxPollBytes)
		}
		var m struct {
			Event string `json:"event"`
			Click string `json:"click"`
		}
		if len(strings.TrimSpace(sc.Text())) == 0 {
			continue
		}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return false, fmt.Errorf("ntfy poll: read message: %w", err)
		}
		if m.Event != "message" || m.Click == "" {
			continue
		}
		if cu, err := url.Parse(m.Click); err == nil && cu.Fragment == marker {
			return true, nil
		}
	}
	if err := sc.Err(); err != nil {
		return false, fmt.Errorf("ntfy poll: %w", err)
	}
	if body.N == 0 {
		return false, fmt.Errorf("ntfy poll: %w (%d bytes)", errPollTooLong, maxPollBytes)
	}
	return false, nil
}
