package pipeline_test

import (
	"testing"

	"github.com/homelab-farm/farm/internal/pipeline"
	"github.com/homelab-farm/farm/internal/state"
)

func TestCounts(t *testing.T) {
	targets := func(states ...string) []state.Target {
		var ts []state.Target
		for _, s := range states {
			ts = append(ts, state.Target{State: s})
		}
		return ts
	}
	tests := []struct {
		name    string
		targets []state.Target
		want    string
	}{
		{"none", nil, "0 built, 0 cached, 0 skipped, 0 failed"},
		{"mixed", targets(state.TargetBuilt, state.TargetBuilt, state.TargetBuilt, state.TargetCached, state.TargetSkipped),
			"3 built, 1 cached, 1 skipped, 0 failed"},
		{"failed", targets(state.TargetFailed, state.TargetBuilt), "1 built, 0 cached, 0 skipped, 1 failed"},
		{"unfinished", targets(state.TargetPending, state.TargetBuilding, state.TargetBuilt),
			"1 built, 0 cached, 0 skipped, 0 failed, 2 pending"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pipeline.CountTargets(tt.targets).String(); got != tt.want {
				t.Errorf("CountTargets(...).String() = %q, want %q", got, tt.want)
			}
		})
	}
}
