// Package farm wires a builder: Open assembles the queue, the state, the
// binary cache, the keys and deploy signer, the forge status clients, the
// agent tokens, the pipeline with its worker pool and the HTTP server
// (internal/server) from one configuration; Run serves it on a listener
// the caller made and owns every goroutine (workers, event writer, webhook
// delivery pruning, agent token reload on SIGHUP, the HTTP server),
// returning once they all stopped; Close releases what Open opened. Serve
// is the whole of `builder serve` (configuration loaded, Open, Listen,
// Run), for the builder command and for test programs that replace the
// processor.
package farm

// Log attribute keys.
const (
	logAddr    = "addr"
	logErr     = "err"
	logPath    = "path"
	logWorkers = "workers"
)
