// Package agent is the host side of the farm: it fetches the host's deploy
// manifest from the builder, checks the farm's signature, the host name and
// the sequence number, realises the closure from the farm's cache trusting
// only the cache's key, sets the system profile, activates the closure, runs
// health checks, re-activates exactly the previous closure when anything
// fails, keeps N profile generations and reports the outcome to the builder.
// The host's maintenance window (package window) decides when a switch may
// happen: outside it the closure is installed for the next boot or waits,
// and the agent looks again when the window opens or the person at the
// keyboard has been idle long enough. The builder may run as several
// instances: every request goes to the one that answered last, and on to
// the next when it fails (package failover).
//
// An Agent's Check may not run concurrently with itself; Run serialises the
// checks that timers, pokes and resumes ask for.
//
// The files follow one check: agent.go decides what a manifest calls for
// (Check), offer.go asks the window whether to switch, install for boot or
// wait, builderclient.go talks to the builder (manifest, seq, report),
// apply.go realises, activates, rolls back and prunes generations,
// health.go judges a switch, state.go is what survives a restart, and run.go
// paces the checks (timer, pokes, resume from sleep).
package agent
