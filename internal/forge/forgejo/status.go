package forgejo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/homelab-farm/farm/internal/forge"
)

// StatusClient sets commit statuses through the Forgejo/Gitea REST API:
// POST {api}/repos/{owner}/{repo}/statuses/{sha}.
type StatusClient struct {
	api   *url.URL
	token string
	hc    *http.Client
}

var _ forge.StatusClient = (*StatusClient)(nil)

// APIURL is the default API base of the forge serving repoURL:
// https://codeberg.org/alice/homelab gives https://codeberg.org/api/v1/.
func APIURL(repoURL string) (string, error) {
	u, err := url.Parse(repoURL)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("repository URL %q: not an absolute URL", repoURL)
	}
	return u.Scheme + "://" + u.Host + "/api/v1/", nil
}

// NewStatusClient returns a client for the API at apiURL (ending in
// /api/v1/) authenticated with token. hc carries retries
// (forge/httpretry); nil means http.DefaultClient.
func NewStatusClient(apiURL, token string, hc *http.Client) (*StatusClient, error) {
	if !strings.HasSuffix(apiURL, "/") {
		apiURL += "/"
	}
	u, err := url.Parse(apiURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("forgejo API URL %q: not an absolute URL", apiURL)
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	return &StatusClient{api: u, token: token, hc: hc}, nil
}

type statusRequest struct {
	State       string `json:"state"`
	TargetURL   string `json:"target_url,omitempty"`
	Description string `json:"description"`
	Context     string `json:"context"`
}

// SetStatus implements forge.StatusClient.
func (s *StatusClient) SetStatus(ctx context.Context, fullName, commit string, st forge.Status) error {
	owner, repo, ok := strings.Cut(fullName, "/")
	if !ok || owner == "" || repo == "" {
		return fmt.Errorf("forgejo status: repository %q: want owner/name", fullName)
	}
	body, err := json.Marshal(statusRequest{State: string(st.State), TargetURL: st.TargetURL, Description: st.Description, Context: st.Context})
	if err != nil {
		return err
	}
	u := s.api.JoinPath("repos", owner, repo, "statuses", commit)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("forgejo status: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if s.token != "" {
		req.Header.Set("Authorization", "token "+s.token)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return fmt.Errorf("forgejo status %s@%s: %w", fullName, commit, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("forgejo status %s@%s: %w", fullName, commit, &forge.APIError{Status: resp.StatusCode, Body: strings.TrimSpace(string(msg))})
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}
