// Package httpserve is the one http.Server of the farm's programs: the
// builder's API and dashboard, `builder cache serve` and the agent's poke
// listener serve through Serve, with header and body timeouts always set
// and a bounded graceful drain when their context ends.
package httpserve
