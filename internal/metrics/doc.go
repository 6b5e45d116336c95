// Package metrics is the builder's Prometheus registry: evaluation, build
// and push durations, bytes pushed, failures by kind, the queue's depth and
// oldest job, and the Go runtime's collectors. It implements
// pipeline.Metrics and serves GET /metrics.
package metrics
