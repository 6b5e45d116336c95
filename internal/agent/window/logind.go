package window

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Runner runs a command and returns its standard output. The agent passes
// one that runs loginctl; tests pass recorded outputs.
type Runner func(ctx context.Context, name string, args ...string) ([]byte, error)

// The properties ReadSessions asks logind for, per session.
var sessionProps = []string{"Id", "Name", "Type", "Class", "Active", "Remote", "IdleHint", "IdleSinceHint"}

// ReadSessions asks logind, through loginctl, for the sessions and whether
// something inhibits idle:
//
//	loginctl list-sessions --output=json
//	loginctl show-session ID -p Id -p Name -p Type ... (for each session)
//	loginctl show-session -p BlockInhibited            (the manager)
//
// A session that ended between the list and its show-session is left out.
func ReadSessions(ctx context.Context, run Runner) (Sessions, error) {
	out, err := run(ctx, "loginctl", "list-sessions", "--output=json", "--no-pager")
	if err != nil {
		return Sessions{}, fmt.Errorf("list sessions: %w", err)
	}
	ids, err := ParseSessionList(out)
	if err != nil {
		return Sessions{}, err
	}
	var ss Sessions
	for _, id := range ids {
		args := []string{"show-session", id, "--no-pager"}
		for _, p := range sessionProps {
			args = append(args, "-p", p)
		}
		out, err := run(ctx, "loginctl", args...)
		if err != nil {
			if ctx.Err() != nil {
				return Sessions{}, fmt.Errorf("show session %s: %w", id, err)
			}
			continue // gone meanwhile
		}
		s, err := ParseSession(out)
		if err != nil {
			return Sessions{}, fmt.Errorf("session %s: %w", id, err)
		}
		if s.ID == "" {
			s.ID = id
		}
		ss.List = append(ss.List, s)
	}
	out, err = run(ctx, "loginctl", "show-session", "--no-pager", "-p", "BlockInhibited")
	if err != nil {
		return Sessions{}, fmt.Errorf("read inhibitors: %w", err)
	}
	ss.IdleInhibited = ParseIdleInhibited(out)
	return ss, nil
}

// ParseSessionList reads the session IDs from `loginctl list-sessions
// --output=json`: an array of objects with at least "session" (systemd 252:
// session, uid, user, seat, tty; later versions add more).
func ParseSessionList(out []byte) ([]string, error) {
	var rows []struct {
		Session json.RawMessage `json:"session"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(out), &rows); err != nil {
		return nil, fmt.Errorf("parse session list: %w", err)
	}
	ids := make([]string, 0, len(rows))
	for _, r := range rows {
		var id string
		if err := json.Unmarshal(r.Session, &id); err != nil {
			var n int64 // tolerate a number
			if err := json.Unmarshal(r.Session, &n); err != nil {
				return nil, fmt.Errorf("parse session list: session id %s", r.Session)
			}
			id = strconv.FormatInt(n, 10)
		}
		if !validSessionID(id) {
			return nil, fmt.Errorf("parse session list: bad session id %q", id)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// A session id is passed to loginctl as an argument: letters, digits, '-',
// '_', '.', nothing that could read as an option.
func validSessionID(id string) bool {
	if id == "" || len(id) > 64 || id[0] == '-' {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// ParseSession reads `loginctl show-session ID -p ...` output: KEY=VALUE
// lines. Booleans are "yes"/"no"; IdleSinceHint is microseconds since the
// epoch (0: never idle or unknown).
func ParseSession(out []byte) (Session, error) {
	var s Session
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		switch k {
		case "Id":
			s.ID = v
		case "Name":
			s.User = v
		case "Type":
			s.Type = v
		case "Class":
			s.Class = v
		case "Active":
			s.Active = v == "yes"
		case "Remote":
			s.Remote = v == "yes"
		case "IdleHint":
			s.Idle = v == "yes"
		case "IdleSinceHint":
			us, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return Session{}, fmt.Errorf("parse IdleSinceHint %q: %w", v, err)
			}
			if us > 0 {
				s.Since = time.UnixMicro(int64(us)).UTC()
			}
		}
	}
	if err := sc.Err(); err != nil {
		return Session{}, fmt.Errorf("read session: %w", err)
	}
	return s, nil
}

// ParseIdleInhibited reads `loginctl show-session -p BlockInhibited` (the
// manager's property, a colon-separated list of what is inhibited, e.g.
// "handle-power-key:idle") and reports whether idle is among them.
func ParseIdleInhibited(out []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || k != "BlockInhibited" {
			continue
		}
		for _, what := range strings.Split(v, ":") {
			if what == "idle" {
				return true
			}
		}
	}
	return false
}
