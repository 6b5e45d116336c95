// Package closurediff compares two closures (the store paths of a host's
// system and everything they reference) the way `nix store diff-closures`
// and nvd present it: packages added, removed and changed version, the
// closure size change per package and in total, and what a host switching
// from one to the other downloads. Closures come from the local store or
// from a binary cache's narinfos; formatters give the short forms shown in
// the dashboard, commit statuses and notifications.
package closurediff
