// Package nix is the only place that runs the nix command-line tools: path
// information, store paths, builds and evaluation. Every call takes a context,
// and failures carry the command's own error message.
package nix
