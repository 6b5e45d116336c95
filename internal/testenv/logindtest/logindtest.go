package logindtest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/agent/window"
)

// Logind is a fake loginctl. Bin is the script, named loginctl, alone in
// Dir: put Dir first in an agent's PATH, or pass Bin where the agent takes a
// loginctl.
type Logind struct {
	Dir, Bin string
	files    string // where the answers are
}

// New writes the script and answers "nobody logged in".
func New(t testing.TB) *Logind {
	t.Helper()
	l := &Logind{Dir: t.TempDir(), files: t.TempDir()}
	l.Bin = filepath.Join(l.Dir, "loginctl")
	script := fmt.Sprintf(`#!/bin/sh
d=%q
case "$1" in
list-sessions) cat "$d/list.json" ;;
show-session)
	if [ "$2" = --no-pager ]; then cat "$d/inhibit.txt"; else cat "$d/session-$2.txt" || exit 1; fi ;;
*) echo "unexpected loginctl $*" >&2; exit 2 ;;
esac
`, l.files)
	if err := os.WriteFile(l.Bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	l.Set(t, false)
	return l
}

// Set makes logind answer with sessions, and with an idle inhibitor (a
// game, a video) when inhibited.
func (l *Logind) Set(t testing.TB, inhibited bool, sessions ...window.Session) {
	t.Helper()
	type row struct {
		Session string `json:"session"`
		UID     int    `json:"uid"`
		User    string `json:"user"`
	}
	rows := []row{}
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	for _, s := range sessions {
		rows = append(rows, row{s.ID, 1000, s.User})
		var since int64
		if !s.Since.IsZero() {
			since = s.Since.UnixMicro()
		}
		body := fmt.Sprintf("Id=%s\nName=%s\nType=%s\nClass=%s\nActive=%s\nRemote=%s\nIdleHint=%s\nIdleSinceHint=%d\n",
			s.ID, s.User, s.Type, s.Class, yes(s.Active), yes(s.Remote), yes(s.Idle), since)
		l.write(t, "session-"+s.ID+".txt", []byte(body))
	}
	list, _ := json.Marshal(rows)
	inhibit := "BlockInhibited=handle-power-key:handle-lid-switch\n"
	if inhibited {
		inhibit = "BlockInhibited=handle-power-key:idle\n"
	}
	l.write(t, "inhibit.txt", []byte(inhibit))
	l.write(t, "list.json", list) // last: the list names the sessions written
}

// Unreadable makes list-sessions fail, as when logind is not running.
func (l *Logind) Unreadable(t testing.TB) {
	t.Helper()
	if err := os.Remove(filepath.Join(l.files, "list.json")); err != nil {
		t.Fatal(err)
	}
}

// write replaces a file in one rename, so that the script never reads half
// of it.
func (l *Logind) write(t testing.TB, name string, body []byte) {
	t.Helper()
	tmp := filepath.Join(l.files, "."+name)
	if err := os.WriteFile(tmp, body, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(l.files, name)); err != nil {
		t.Fatal(err)
	}
}

// Desktop is rain's Wayland session in the foreground of its seat, idle
// since since (zero: not idle).
func Desktop(since time.Time) window.Session {
	return window.Session{ID: "2", User: "rain", Type: "wayland", Class: "user", Active: true, Idle: !since.IsZero(), Since: since}
}
