package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/homelab-farm/farm/internal/atomicfile"
	"github.com/homelab-farm/farm/internal/deploy"
	"github.com/homelab-farm/farm/internal/farmapi"
)

// State is what the agent remembers across restarts (and sleeps).
type State struct {
	// LastSeq is the seq of the last manifest the agent acted on: switched
	// to, found already running, or tried and rolled back. A manifest with
	// a seq not above it is never applied.
	LastSeq uint64 `json:"last_seq"`
	// StorePath is the store path of that manifest.
	StorePath string `json:"store_path,omitempty"`
	// Result is what came of it ("switched", "rolled back", ...).
	Result farmapi.Result `json:"result,omitempty"`
	Reason string         `json:"reason,omitempty"`
	Time   time.Time      `json:"time,omitzero"`
	// Pending is set while a closure is being activated: found at start,
	// it means the agent (or the host) stopped in the middle of an update.
	Pending *Pending `json:"pending,omitempty"`
}

// Pending is an activation in progress.
type Pending struct {
	Seq       uint64 `json:"seq"`
	StorePath string `json:"store_path"`
	Previous  string `json:"previous"` // the store path to go back to
	// Held is set when the window held the switch back and the closure is
	// being installed for the next boot only: why.
	Held string `json:"held,omitempty"`
}

const stateFile = "state.json"

// loadState reads the state in dir; a missing file is the zero State.
func loadState(dir string) (State, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return State{}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("read agent state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return State{}, fmt.Errorf("parse agent state %s: %w", filepath.Join(dir, stateFile), err)
	}
	return s, nil
}

// saveState replaces the state in dir atomically and durably: after a crash
// the file holds either the old state or the new one.
func saveState(dir string, s State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode agent state: %w", err)
	}
	return atomicfile.Write(filepath.Join(dir, stateFile), append(b, '\n'))
}

// remember records that the agent acted on m, with what came of it.
func (a *Agent) remember(m deploy.Manifest, result farmapi.Result, reason string) error {
	return saveState(a.cfg.StateDir, State{LastSeq: m.Seq, StorePath: m.StorePath, Result: result, Reason: reason, Time: a.now().UTC()})
}
