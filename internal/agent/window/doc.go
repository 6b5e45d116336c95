// Package window decides when the agent may switch a host to a new system: a
// maintenance window ("always", a daily "HH:MM-HH:MM" in the host's time zone,
// or "when-idle": nobody at the keyboard), and what to do outside it (install
// for the next boot now, or wait). Decide is pure; ReadSessions asks logind
// (through loginctl, with an injectable command runner) whether a person is at
// the keyboard.
package window
