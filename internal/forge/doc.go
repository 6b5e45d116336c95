// Package forge is the farm's forge-neutral view of webhooks and commit
// statuses. A webhook from any forge becomes one Push; a status to report
// becomes one Status sent through a StatusClient. The per-forge details live
// in the sub-packages: forge/github wraps go-github, forge/forgejo speaks
// the Forgejo/Gitea API (Codeberg runs Forgejo).
package forge
