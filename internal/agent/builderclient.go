package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/homelab-farm/farm/internal/deploy"
	"github.com/homelab-farm/farm/internal/farmapi"
)

// hostAPI sends a request for the host's path under /api/hosts/{host} to
// the builder instance that answers (failover.Pool.Do), with the host's
// token when withToken. body makes the request's body afresh for each
// instance tried (nil: none).
func (a *Agent) hostAPI(ctx context.Context, method, path string, withToken bool, body []byte) (*http.Response, error) {
	return a.builders.Do(ctx, a.http, func(base string) (*http.Request, error) {
		var r io.Reader
		if body != nil {
			r = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, base+"/api/hosts/"+url.PathEscape(a.cfg.Host)+path, r)
		if err != nil {
			return nil, err
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if withToken {
			req.Header.Set("Authorization", "Bearer "+a.cfg.Token)
		}
		return req, nil
	})
}

// fetchManifest gets the host's signed manifest; errNoManifest on 404.
func (a *Agent) fetchManifest(ctx context.Context) (deploy.Signed, error) {
	resp, err := a.hostAPI(ctx, http.MethodGet, "/manifest", false, nil)
	if err != nil {
		return deploy.Signed{}, fmt.Errorf("fetch manifest: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return deploy.Signed{}, errNoManifest
	case resp.StatusCode != http.StatusOK:
		return deploy.Signed{}, fmt.Errorf("fetch manifest: builder answered %s", resp.Status)
	}
	var s deploy.Signed
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&s); err != nil {
		// Unreadable JSON is as good as a tampered manifest: refuse it the
		// same way, by handing Verify an empty one.
		return deploy.Signed{}, nil
	}
	return s, nil
}

// builderSeq asks the builder for the seq of the host's current manifest
// (0: none), with the host's token. Without a token it cannot ask: it says
// so in the log and answers 0, the protection a token-less agent had before.
func (a *Agent) builderSeq(ctx context.Context) (uint64, error) {
	if a.cfg.Token == "" {
		a.log.Warn("no local state and no agent token: cannot ask the builder for this host's seq; any unexpired signed manifest is taken")
		return 0, nil
	}
	resp, err := a.hostAPI(ctx, http.MethodGet, "/seq", true, nil)
	if err != nil {
		return 0, fmt.Errorf("ask builder for seq: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("ask builder for seq: builder answered %s", resp.Status)
	}
	var v struct {
		Seq *uint64 `json:"seq"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&v); err != nil || v.Seq == nil {
		return 0, fmt.Errorf("ask builder for seq: malformed answer")
	}
	return *v.Seq, nil
}

// report tells the builder the outcome of a check.
func (a *Agent) report(ctx context.Context, out Outcome) error {
	if a.cfg.Token == "" {
		return nil
	}
	body, err := json.Marshal(struct {
		farmapi.Report
		Time time.Time `json:"time"`
	}{out.Report(), a.now().UTC()})
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	resp, err := a.hostAPI(ctx, http.MethodPost, "/report", true, body)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("report: builder answered %s", resp.Status)
	}
	return nil
}
