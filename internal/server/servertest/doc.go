// Package servertest helps test the builder's HTTP surface: a state and a
// queue seeded with two evaluations of a four-host fleet (Seed), signed
// webhook requests for every forge, a configuration of test remotes, and
// small HTTP helpers. It imports testing and is for tests only.
package servertest
