// Package rollout is the wave state machine the builder drives for each
// deploy-branch commit (or fleet rollback): which hosts get their manifests
// now, and whether the rollout is progressing, complete, halted (and why),
// aborted or superseded.
//
// A rollout offers its closure to the hosts of the lowest wave first; the next
// wave gets its manifests only when every host of the current one reported
// that it switched to exactly that closure and is healthy (or installed it for
// the next boot), within the gate timeout. A host that fails or rolls back, or
// a wave that does not pass in time, halts the rollout: later waves keep their
// closure until an admin resumes (the next wave goes on) or aborts it. A host
// that is asleep when its wave is due holds the wave (policy "wait") or is
// passed over and listed to be woken and updated later ("skip").
//
// Everything here is pure: no I/O, no clock (the caller passes now), and the
// state (Rollout) is JSON with a versioned shape, kept in the state database.
package rollout
