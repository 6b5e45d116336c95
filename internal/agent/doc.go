// Package agent is the host side of the farm: it fetches the host's deploy
// manifest from the builder, checks the farm's signature, the host name and
// the sequence number, realises the closure from the farm's cache trusting
// only the cache's key, sets the system profile, activates the closure, runs
// health checks, re-activates exactly the previous closure when anything
// fails, keeps N profile generations and reports the outcome to the builder.
//
// An Agent's Check may not run concurrently with itself; Run serialises the
// checks that timers, pokes and resumes ask for.
//
// The files follow one check: agent.go decides what a manifest calls for
// (Check), builderclient.go talks to the builder (manifest, seq, report),
// apply.go realises, activates, rolls back and prunes generations,
// health.go judges a switch, state.go is what survives a restart, and run.go
// paces the checks (timer, pokes, resume from sleep).
package agent
