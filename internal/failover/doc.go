// Package failover sends HTTP requests to one of several equivalent base
// URLs — the instances of one farm's builder, which share their database —
// moving on to the next when one cannot be reached, times out or answers
// with a server error (5xx), and remembering the one that answered so that
// the next request starts there.
package failover
