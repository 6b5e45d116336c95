// Package notify turns the builder's event stream into things a person and
// the fleet notice: ntfy notifications on failures and recoveries, Wake-on-LAN
// magic packets for sleeping hosts with a new desired closure, and pokes that
// make agents check at once. Its cursor into the stream is kept on disk with
// the rest of its state, and with the notification in flight, which a
// restart looks up in the publisher's record (ntfy's message cache) before
// publishing it again: across restarts, even after SIGKILL, it neither misses
// nor repeats a notification (see Notifier.Handle for the fallback).
//
// The files follow an event: follow.go reads the stream, rules.go decides
// (decide, a pure function of the rules, the state and the event),
// deliver.go publishes exactly once, wake.go pokes and wakes hosts, and
// notifier.go holds the state on disk and ties them together; ntfy.go and
// wol.go speak ntfy's API and Wake-on-LAN, config.go reads the TOML file.
package notify
