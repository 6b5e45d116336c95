package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/homelab-farm/farm/internal/deploy"
	"github.com/homelab-farm/farm/internal/farmapi"
)

func (a *Agent) api(path string) string {
	return strings.TrimSuffix(a.cfg.BuilderURL, "/") + path
}

// fetchManifest gets the host's signed manifest; errNoManifest on 404.
func (a *Agent) fetchManifest(ctx context.Context) (deploy.Signed, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.api("/api/hosts/"+url.PathEscape(a.cfg.Host)+"/manifest"), nil)
	if err != nil {
		return deploy.Signed{}, fmt.Errorf("fetch manifest: %w", err)
	}
	resp, err := a.http.Do(req)
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
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.api("/api/hosts/"+url.PathEscape(a.cfg.Host)+"/seq"), nil)
	if err != nil {
		return 0, fmt.Errorf("ask builder for seq: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+a.cfg.Token)
	resp, err := a.http.Do(req)
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
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.api("/api/hosts/"+url.PathEscape(a.cfg.Host)+"/report"), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+a.cfg.Token)
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("report: builder answered %s", resp.Status)
	}
	return nil
}
