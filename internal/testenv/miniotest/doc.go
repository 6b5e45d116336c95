// Package miniotest runs a real MinIO in Docker for tests.
//
// The image is built locally, FROM scratch, from the static MinIO binary
// that scripts/setup installs (no registry is reachable), once per machine
// and tagged by the binary's hash. The container publishes port 9000 on
// 127.0.0.1 only, on a port chosen here so that Stop and Restart keep it.
//
// Start returns one server shared by the whole test binary; StartDedicated
// returns a private one for tests that stop and restart it. A package whose
// tests use Start should remove the shared container when its tests end:
//
//	func TestMain(m *testing.M) { miniotest.Main(m) }
//
// Should the test binary die before that (a panic, a timeout, SIGKILL), a
// watchdog process removes the container as soon as the binary is gone:
// no container outlives `go test`.
package miniotest
