package nix

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/homelab-farm/farm/internal/hostname"
)

// DeployAttr is the flake output that declares how the farm rolls a commit
// out to each host it deploys (nix/lib/deploy.nix, docs/fleet.md).
const DeployAttr = "farm.deploy"

// DeploySettings are one host's rollout settings, as the fleet flake's
// farm.deploy output gives them. The builder uses Wave and Asleep; the
// window settings are for the host's agent.
type DeploySettings struct {
	Wave          int    `json:"wave"`
	Window        string `json:"window"`
	OutsideWindow string `json:"outsideWindow"`
	IdleMinutes   int    `json:"idleMinutes"`
	Asleep        string `json:"asleep"`
}

// ErrDeploySettings is wrapped by the error of a farm.deploy output that
// is not what the builder reads: a retry cannot change it.
var ErrDeploySettings = errors.New("invalid farm.deploy output")

// DeploySettings evaluates the flake's farm.deploy output: every deployed
// host's rollout settings by host name. A flake without that output
// returns nil and no error (every host is then in one wave).
func (c *Client) DeploySettings(ctx context.Context, flake string) (map[string]DeploySettings, error) {
	out, err := c.output(ctx, "nix", "eval", "--json", "--no-write-lock-file", flake+"#"+DeployAttr)
	var nerr *Error
	if errors.As(err, &nerr) && strings.Contains(nerr.Stderr, "does not provide attribute") {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return ParseDeploySettings(out)
}

// ParseDeploySettings reads farm.deploy's JSON. Host names, waves and
// asleep policies are checked, since they come from a push: a bad one is
// an error wrapping ErrDeploySettings, naming it quoted.
func ParseDeploySettings(data []byte) (map[string]DeploySettings, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw map[string]DeploySettings
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDeploySettings, err)
	}
	out := make(map[string]DeploySettings, len(raw))
	for host, s := range raw {
		if err := hostname.Validate(host); err != nil {
			return nil, fmt.Errorf("%w: host %q: %v", ErrDeploySettings, host, err)
		}
		if s.Wave < 0 {
			return nil, fmt.Errorf("%w: host %s: wave %d is below 0", ErrDeploySettings, host, s.Wave)
		}
		switch s.Asleep {
		case "":
			s.Asleep = "wait"
		case "wait", "skip":
		default:
			return nil, fmt.Errorf("%w: host %s: asleep %q is neither \"wait\" nor \"skip\"", ErrDeploySettings, host, s.Asleep)
		}
		out[host] = s
	}
	return out, nil
}
