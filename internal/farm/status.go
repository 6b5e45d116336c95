package farm

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/homelab-farm/farm/internal/config"
	"github.com/homelab-farm/farm/internal/forge"
	"github.com/homelab-farm/farm/internal/forge/forgejo"
	"github.com/homelab-farm/farm/internal/forge/github"
	"github.com/homelab-farm/farm/internal/forge/httpretry"
)

// statusClients builds one status client per remote with a token_file,
// keyed by forge.NormalizeURL of the remote, each bound to the configured
// repository. hc is shared by all (nil: a retrying client).
func statusClients(cfg *config.Config, hc *http.Client, log *slog.Logger) (map[string]forge.StatusClient, error) {
	if hc == nil {
		hc = httpretry.New(httpretry.Options{Log: log})
	}
	clients := map[string]forge.StatusClient{}
	for _, r := range cfg.Repositories {
		for _, m := range r.Remotes {
			if m.TokenFile == "" {
				continue
			}
			token, err := m.ReadToken()
			if err != nil {
				return nil, fmt.Errorf("remote %s: %w", m.URL, err)
			}
			var c forge.StatusClient
			switch m.Forge {
			case forge.GitHub:
				c, err = github.NewStatusClient(m.APIURL, token, hc)
			case forge.Forgejo:
				api := m.APIURL
				if api == "" {
					if api, err = forgejo.APIURL(m.URL); err != nil {
						return nil, err
					}
				}
				c, err = forgejo.NewStatusClient(api, token, hc)
			}
			if err != nil {
				return nil, fmt.Errorf("remote %s: %w", m.URL, err)
			}
			// Statuses go to the configured repository, never to a
			// full_name a payload brought.
			clients[forge.NormalizeURL(m.URL)] = forge.ForRepo(c, forge.FullName(m.URL))
		}
	}
	return clients, nil
}
