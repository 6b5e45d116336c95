package farm

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/homelab-farm/farm/internal/pipeline"
	"github.com/homelab-farm/farm/internal/testenv"
)

// TestPublicURLWarningAtStartup: statuses link only under the configured
// public_url, never the listen address; a builder whose public_url gives
// no links says so when it opens.
func TestPublicURLWarningAtStartup(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, publicURL string
		warn            bool
	}{
		{name: "none", publicURL: "", warn: true},
		{name: "unspecified address", publicURL: "http://0.0.0.0:8080", warn: true},
		{name: "port 0", publicURL: "http://127.0.0.1:0", warn: true},
		{name: "configured", publicURL: "https://farm.example/", warn: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for name, v := range map[string]string{"gh": "secret\n", "gh-token": "ghtok\n"} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			src := "public_url = \"" + tc.publicURL + `"
[[repository]]
name = "homelab"
  [[repository.remote]]
  forge = "github"
  url = "https://github.com/alice/homelab"
  secret_files = ["gh"]
  token_file = "gh-token"
`
			cfg := writeConfig(t, dir, src)
			logs := &testenv.Buffer{}
			f, err := Open(context.Background(), cfg, Options{Log: slog.New(slog.NewTextHandler(logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()

			want := pipeline.PublicURLWarning(strings.TrimSuffix(tc.publicURL, "/"))
			if (want != "") != tc.warn {
				t.Fatalf("PublicURLWarning(%q) = %q, want a warning: %v", tc.publicURL, want, tc.warn)
			}
			got := logs.String()
			if tc.warn && !strings.Contains(got, "level=WARN") || tc.warn && !strings.Contains(got, strings.ReplaceAll(want, `"`, `\"`)) {
				t.Errorf("start-up log lacks the warning %q:\n%s", want, got)
			}
			if !tc.warn && strings.Contains(got, "public_url") {
				t.Errorf("start-up log warns about a usable public_url:\n%s", got)
			}
			st := f.pipeline.Statuses
			if st == nil || st.PublicURL != strings.TrimSuffix(tc.publicURL, "/") || st.Evaluations == nil {
				t.Fatalf("statuses = %+v, want PublicURL %q and the state as Evaluations", st, tc.publicURL)
			}
			if link := st.EvaluationURL(7); tc.warn && link != "" || !tc.warn && link != "https://farm.example/evaluations/7" {
				t.Errorf("EvaluationURL(7) = %q", link)
			}
		})
	}
}
