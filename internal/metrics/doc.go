// Package metrics is the builder's Prometheus registry: evaluation, build
// and push durations, bytes pushed, failures by kind, the queue's depth and
// oldest job (read from the queue, which several builder instances may
// share), the instance's name, and the Go runtime's collectors. It implements
// pipeline.Metrics and serves GET /metrics.
package metrics
