// Package server is the builder's HTTP surface: one route table (routes.go)
// for the forge webhooks, the JSON API, the event stream, build logs, the
// agents' manifest, seq and report endpoints, manual triggers, metrics,
// the binary cache at /nix-cache/ and the dashboard pages
// (internal/server/dashboard). New takes its dependencies as small
// interfaces, so tests serve Handler with httptest over fakes or the real
// queue and state; internal/farm wires the real ones and serves it.
package server
