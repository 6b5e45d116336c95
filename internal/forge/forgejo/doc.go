// Package forgejo reads Forgejo, Codeberg and Gitea webhooks and writes
// commit statuses through their REST API (/api/v1). The three share one
// payload format; Forgejo names its headers X-Forgejo-*, Gitea X-Gitea-*,
// and both also send GitHub-style headers, which are ignored here: the
// endpoint, not a header guess, decides the forge.
package forgejo
