// Package farmtest sets up what a test of a whole builder needs: a fleet
// repository, a builder configuration fetching from it with statuses going
// to a fake forge API, signed pushes, and helpers that wait for an
// evaluation over the API. It imports testing and is for tests only.
package farmtest
