// Package config is the builder's settings: Load merges the TOML file
// (examples/builder.toml is the commented reference), the environment and
// the flags of `builder serve` and checks them all with one Validate.
// Every mistake in the file is reported with the file, the line and the
// reason, before anything starts.
package config
