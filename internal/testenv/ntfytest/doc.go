// Package ntfytest is an ntfy server for tests. It speaks the two parts of
// ntfy's HTTP API the farm uses: publishing (POST or PUT /<topic>, the
// message as body, Title, Priority, Tags and Click headers) and polling the
// message cache (GET /<topic>/json?poll=1&since=..., newline-delimited JSON
// messages with ntfy's field names). Header values may be RFC 2047 encoded,
// as ntfy allows. Tests can make it fail or refuse publishes, fail
// polls as a server without a cache might, and act inside a publish before it
// is answered.
package ntfytest
