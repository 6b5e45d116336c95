// Package logindtest is a fake loginctl for tests of the agent's
// maintenance windows: a shell script that answers list-sessions and
// show-session from files in systemd 252's formats (what
// window.ReadSessions reads), which the test rewrites to say who sits at
// the keyboard. It runs as a real program, so agents started as processes
// (with its directory first in PATH) ask it too.
package logindtest
