package github

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	gh "github.com/google/go-github/v93/github"

	"github.com/homelab-farm/farm/internal/forge"
)

// DefaultAPIURL is github.com's API.
const DefaultAPIURL = "https://api.github.com/"

// StatusClient sets commit statuses through go-github.
type StatusClient struct {
	c *gh.Client
}

var _ forge.StatusClient = (*StatusClient)(nil)

// NewStatusClient returns a client for the API at apiURL ("" for
// github.com) authenticated with token. hc carries retries
// (forge/httpretry); nil means http.DefaultClient.
func NewStatusClient(apiURL, token string, hc *http.Client) (*StatusClient, error) {
	if apiURL == "" {
		apiURL = DefaultAPIURL
	}
	if !strings.HasSuffix(apiURL, "/") {
		apiURL += "/"
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	opts := []gh.ClientOptionsFunc{gh.WithHTTPClient(hc), gh.WithURLs(&apiURL, &apiURL)}
	if token != "" {
		opts = append(opts, gh.WithAuthToken(token))
	}
	c, err := gh.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("github client: %w", err)
	}
	return &StatusClient{c: c}, nil
}

// SetStatus implements forge.StatusClient.
func (s *StatusClient) SetStatus(ctx context.Context, fullName, commit string, st forge.Status) error {
	owner, repo, ok := strings.Cut(fullName, "/")
	if !ok || owner == "" || repo == "" {
		return fmt.Errorf("github status: repository %q: want owner/name", fullName)
	}
	rs := gh.RepoStatus{
		State:       gh.Ptr(string(st.State)),
		Context:     gh.Ptr(st.Context),
		Description: gh.Ptr(st.Description),
	}
	if st.TargetURL != "" {
		rs.TargetURL = gh.Ptr(st.TargetURL)
	}
	if _, _, err := s.c.Repositories.CreateStatus(ctx, owner, repo, commit, rs); err != nil {
		return fmt.Errorf("github status %s@%s: %w", fullName, commit, err)
	}
	return nil
}
