package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/homelab-farm/farm/internal/cli"
	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/hostname"
	"github.com/homelab-farm/farm/internal/secretfile"
	"github.com/homelab-farm/farm/internal/textcut"
)

// maxAnswer bounds what the rollback client reads of the builder's answer.
const maxAnswer = 1 << 20

// runRollback asks a running builder (POST /api/rollouts, admin token) to
// roll the fleet, or the listed hosts, back to the closures of an earlier
// deployed commit, through the waves, and prints the rollout it started.
func runRollback(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("builder rollback", "BUILDER_ROLLBACK", getenv, stdout, stderr)
	builder := fs.String("builder", "http://127.0.0.1:8080", "the builder's base `URL`")
	tokenFile := fs.SecretFile("admin-token-file", "`file` with the builder's admin token")
	to := fs.String("to", "", "the `commit` to roll back to: its id, or a unique prefix of 7 or more hex digits")
	repo := fs.String("repo", "", "the `repository` (config name), when several deploy")
	var hosts []string
	fs.StringsVar(&hosts, "host", cli.Fields, "space-separated",
		"roll back only this `host`; repeatable (none: every host the commit deployed)")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the builder's answer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := fs.NoArgs(); err != nil {
		return err
	}
	req := farmapi.RollbackRequest{To: strings.ToLower(strings.TrimSpace(*to)), Hosts: hosts, Repo: *repo}
	switch {
	case req.To == "":
		return cli.Usagef("rollback: --to COMMIT is required")
	case len(req.To) < 7 || len(req.To) > 64 || strings.Trim(req.To, "0123456789abcdef") != "":
		return cli.Usagef("rollback: --to %q is not a commit id (7 to 64 hex digits)", *to)
	case *timeout <= 0:
		return cli.Usagef("rollback: --timeout %v: want a positive duration", *timeout)
	}
	for _, h := range hosts {
		if err := hostname.Validate(h); err != nil {
			return cli.Usagef("rollback: --host %q: %v", h, err)
		}
	}
	base, err := url.Parse(strings.TrimSuffix(*builder, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return cli.Usagef("rollback: --builder %q: want an http(s) URL", *builder)
	}
	token, err := secretfile.ReadLine(*tokenFile, "admin token")
	if err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	ro, err := requestRollback(ctx, http.DefaultClient, base.String(), token, req)
	if err != nil {
		return fmt.Errorf("rollback to %s: %w", req.To, err)
	}
	fmt.Fprint(stdout, describeRollout(ro))
	return nil
}

// errRefused is wrapped by the error of a rollback the builder refused.
var errRefused = errors.New("the builder refused")

// requestRollback sends req to the builder at base and returns the rollout
// it started.
func requestRollback(ctx context.Context, c *http.Client, base, token string, req farmapi.RollbackRequest) (farmapi.Rollout, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return farmapi.Rollout{}, fmt.Errorf("encode request: %w", err)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/rollouts", bytes.NewReader(body))
	if err != nil {
		return farmapi.Rollout{}, fmt.Errorf("request: %w", err)
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Accept", "application/json")
	hr.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(hr)
	if err != nil {
		return farmapi.Rollout{}, fmt.Errorf("ask the builder: %w", err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return farmapi.Rollout{}, fmt.Errorf("read the builder's answer: %w", err)
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(answer))
		if json.Unmarshal(answer, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return farmapi.Rollout{}, fmt.Errorf("%w (HTTP %d): %s", errRefused, resp.StatusCode, printable(msg))
	}
	var ro farmapi.Rollout
	if err := json.Unmarshal(answer, &ro); err != nil {
		return farmapi.Rollout{}, fmt.Errorf("the builder's answer: %w", err)
	}
	return ro, nil
}

// printable cuts msg to one short line of printable characters: what a
// server says is shown, never interpreted by the terminal.
func printable(msg string) string {
	msg = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return ' '
		}
		return r
	}, msg)
	return textcut.Bytes(msg, 500)
}

// describeRollout says what a started rollout will do, a line per wave.
func describeRollout(ro farmapi.Rollout) string {
	var b strings.Builder
	verb := "rolling out"
	if ro.Kind == "rollback" {
		verb = "rolling back"
	}
	fmt.Fprintf(&b, "rollout %d: %s %s to %s (%s)\n", ro.ID, verb, printable(ro.Repo), printable(ro.Commit), printable(ro.Status))
	wave, first := 0, true
	for _, h := range ro.Hosts {
		if first || h.Wave != wave {
			if !first {
				b.WriteString("\n")
			}
			fmt.Fprintf(&b, "  wave %d:", h.Wave)
			wave, first = h.Wave, false
		}
		mark := ""
		if h.Offered {
			mark = " (offered)"
		}
		fmt.Fprintf(&b, " %s%s", printable(h.Host), mark)
	}
	if !first {
		b.WriteString("\n")
	}
	return b.String()
}
