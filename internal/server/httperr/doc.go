// Package httperr is how the builder's HTTP handlers fail: an Error keeps
// what the client is told apart from what is logged, the catalogue in
// errors.go holds every message a client can see, and Handler is the one
// adapter that writes error answers (JSON, or an HTML page for a browser on
// a dashboard page) and logs them.
package httperr
