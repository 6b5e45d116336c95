// Package queuetest is the contract every queue.Queue must keep, and a
// settable clock for tests. Each implementation's tests call
// RunContractTests with a constructor of empty queues.
package queuetest
