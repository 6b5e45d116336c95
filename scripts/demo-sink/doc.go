// Command demo-sink stands in, for `make demo`, for the two outside services
// the farm talks to: an ntfy server (POST /<topic>) and a forge's commit
// status API (POST …/statuses/<sha>, GitHub and Forgejo shapes). It listens
// on 127.0.0.1 only, writes its address to -addr-file once it accepts, and
// appends what it receives, one JSON object per line, to ntfy.jsonl and
// statuses.jsonl in -dir. It stops on SIGINT or SIGTERM.
package main
