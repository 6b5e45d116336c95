package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/config"
)

// The [cache_gc] and [store_gc] sections: defaults when absent, values as
// written, and a clear Validate error naming the key for each bad value.
func TestCacheGCSettings(t *testing.T) {
	t.Parallel()
	const pin = "/nix/store/0c1ik6l3ym9f2z8bvb0hkkkdvdlnkmm8-pinned"
	for _, tc := range []struct {
		name, toml string
		check      func(t *testing.T, c *config.Config)
		wantErr    string
	}{
		{name: "defaults", check: func(t *testing.T, c *config.Config) {
			g, s := c.CacheGC, c.StoreGC
			if g.CollectInterval() != 24*time.Hour || g.KeepGenerations() != 5 || g.Days() != 14 || g.GracePeriod() != time.Hour || len(g.Pins) != 0 {
				t.Errorf("cache_gc defaults = %s %d %d %s %v", g.CollectInterval(), g.KeepGenerations(), g.Days(), g.GracePeriod(), g.Pins)
			}
			if s.CollectInterval() != 24*time.Hour || s.MinFree != 0 || s.MaxFree != 0 {
				t.Errorf("store_gc defaults = %s %d %d", s.CollectInterval(), s.MinFree, s.MaxFree)
			}
		}},
		{name: "set", toml: "[cache_gc]\ninterval = \"6h\"\ngenerations = 3\nkeep_days = 0\ngrace = \"2h\"\npins = [\"" + pin + "\"]\n" +
			"[store_gc]\ninterval = \"0\"\nmin_free = 1000\nmax_free = 5000\n", check: func(t *testing.T, c *config.Config) {
			g, s := c.CacheGC, c.StoreGC
			if g.CollectInterval() != 6*time.Hour || g.KeepGenerations() != 3 || g.Days() != 0 || g.GracePeriod() != 2*time.Hour || len(g.Pins) != 1 || g.Pins[0] != pin {
				t.Errorf("cache_gc = %s %d %d %s %v", g.CollectInterval(), g.KeepGenerations(), g.Days(), g.GracePeriod(), g.Pins)
			}
			if s.CollectInterval() != 0 || s.MinFree != 1000 || s.MaxFree != 5000 {
				t.Errorf("store_gc = %s %d %d", s.CollectInterval(), s.MinFree, s.MaxFree)
			}
		}},
		{name: "schedule off", toml: "[cache_gc]\ninterval = \"0s\"\n", check: func(t *testing.T, c *config.Config) {
			if d := c.CacheGC.CollectInterval(); d != 0 {
				t.Errorf("interval = %s, want 0 (off)", d)
			}
		}},
		{name: "zero generations", toml: "[cache_gc]\ngenerations = 0\n", wantErr: "cache_gc.generations 0: want at least 1"},
		{name: "negative age", toml: "[cache_gc]\nkeep_days = -1\n", wantErr: "cache_gc.keep_days -1: want 0 or more"},
		{name: "negative interval", toml: "[cache_gc]\ninterval = \"-1h\"\n", wantErr: "cache_gc.interval: negative duration"},
		{name: "short grace", toml: "[cache_gc]\ngrace = \"1s\"\n", wantErr: "cache_gc.grace 1s: want at least 1m0s"},
		{name: "bad pin", toml: "[cache_gc]\npins = [\"/etc/passwd\"]\n", wantErr: `cache_gc.pins: "/etc/passwd" is not a store path`},
		{name: "pin with subpath", toml: "[cache_gc]\npins = [\"" + pin + "/bin\"]\n", wantErr: "is not a store path"},
		{name: "max below min", toml: "[store_gc]\nmin_free = 100\nmax_free = 50\n", wantErr: "store_gc.max_free 50 is not above min_free 100"},
		{name: "negative free", toml: "[store_gc]\nmin_free = -1\n", wantErr: "store_gc.min_free -1, max_free 0: want 0 or more"},
		{name: "negative store interval", toml: "[store_gc]\ninterval = \"-5m\"\n", wantErr: "store_gc.interval: negative duration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := config.Parse("builder.toml", []byte("state_dir = \"state\"\nlisten = \"127.0.0.1:0\"\n"+tc.toml))
			if err == nil {
				err = c.Validate()
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse+Validate = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse+Validate = %v", err)
			}
			tc.check(t, c)
		})
	}
}
