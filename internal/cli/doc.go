// Package cli is what the farm's programs share on their command line: one
// main (a signal context, one error print, exit 0, 1 for errors and 2 for
// usage), flag sets whose every flag falls back to an environment variable
// named after it and parsed by the same code (so a malformed value is an
// error wherever it comes from), one log-level flag configuring the one
// slog logger, and -flags-json, which prints the flag schema the NixOS
// modules are generated from.
package cli
