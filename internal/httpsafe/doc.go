// Package httpsafe holds the defences every HTTP server of the farm shares:
// the bearer-token check, the nosniff header, bounds on what unauthenticated
// clients may hold (bytes in memory, open streams) and per-write deadlines
// that drop a client which stops reading without cutting one that reads
// slowly.
package httpsafe
