// Package pipeline is the builder's worker: it claims evaluation jobs from
// the queue, fetches the pushed commit, evaluates every host of the fleet
// flake, builds each host's closure in the lane of its system, pushes it to
// the binary cache, diffs it against the closure the host runs and the
// previous build (what changes, what a host downloads), reports commit
// statuses, and on the deploy branch records each host's desired closure
// with a signed deploy manifest.
//
// Every step is idempotent: a worker killed at any point leaves a job whose
// lease expires, and the worker that claims it next finds what is already
// in the cache and pushes nothing twice.
package pipeline
