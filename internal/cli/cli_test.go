package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"
)

type settings struct {
	workers int
	silent  time.Duration
	memory  int64
	name    string
	once    bool
	checks  []string
	token   string
}

func newSet(env map[string]string, stdout, stderr *bytes.Buffer) (*FlagSet, *settings) {
	s := &settings{}
	fs := NewFlagSet("prog", "PROG", func(k string) string { return env[k] }, stdout, stderr)
	fs.IntVar(&s.workers, "workers", 1, "workers")
	fs.DurationVar(&s.silent, "max-silent-time", 30*time.Minute, "silence allowed")
	fs.SizeVar(&s.memory, "eval-memory", 0, "memory budget")
	fs.EnvAlias("eval-memory", "PROG_EVAL_MEMORY_MB", "MiB", func(v string) (string, error) { return v + "MiB", nil })
	fs.StringVar(&s.name, "name", "def", "a name")
	fs.BoolVar(&s.once, "once", false, "once")
	fs.StringsVar(&s.checks, "health-check", Lines, "one per line", "checks")
	fs.SecretFileVar(&s.token, "token-file", "token")
	return fs, s
}

func TestParsePrecedence(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want settings
	}{
		{"defaults", nil, nil, settings{workers: 1, silent: 30 * time.Minute, name: "def"}},
		{"env", nil, map[string]string{"PROG_WORKERS": "3", "PROG_MAX_SILENT_TIME": "1h", "PROG_NAME": "e", "PROG_ONCE": "true",
			"PROG_HEALTH_CHECKS": "a b\n\n c\n", "PROG_TOKEN_FILE": "/t", "PROG_EVAL_MEMORY": "4GiB"},
			settings{workers: 3, silent: time.Hour, name: "e", once: true, checks: []string{"a b", "c"}, token: "/t", memory: 4 << 30}},
		{"flag over env", []string{"--workers", "5", "--name=f", "--health-check", "x", "--eval-memory", "100"},
			map[string]string{"PROG_WORKERS": "3", "PROG_NAME": "e", "PROG_HEALTH_CHECKS": "a\nb"},
			settings{workers: 5, silent: 30 * time.Minute, name: "f", checks: []string{"x"}, memory: 100}},
		{"alias in MiB", nil, map[string]string{"PROG_EVAL_MEMORY_MB": "512"},
			settings{workers: 1, silent: 30 * time.Minute, name: "def", memory: 512 << 20}},
		{"derived name over alias", nil, map[string]string{"PROG_EVAL_MEMORY_MB": "512", "PROG_EVAL_MEMORY": "1GiB"},
			settings{workers: 1, silent: 30 * time.Minute, name: "def", memory: 1 << 30}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			fs, got := newSet(tt.env, &out, &errb)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatalf("Parse: %v (%s)", err, errb.String())
			}
			if fmt.Sprint(*got) != fmt.Sprint(tt.want) {
				t.Errorf("got %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

func TestParseMalformed(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{"env int", nil, map[string]string{"PROG_WORKERS": "two"}, "PROG_WORKERS"},
		{"env duration", nil, map[string]string{"PROG_MAX_SILENT_TIME": "30"}, "PROG_MAX_SILENT_TIME"},
		{"env bool", nil, map[string]string{"PROG_ONCE": "yes please"}, "PROG_ONCE"},
		{"env size", nil, map[string]string{"PROG_EVAL_MEMORY": "4 GiBs"}, "PROG_EVAL_MEMORY"},
		{"alias size", nil, map[string]string{"PROG_EVAL_MEMORY_MB": "lots"}, "PROG_EVAL_MEMORY_MB"},
		{"flag int", []string{"--workers", "two"}, nil, ""},
		{"unknown flag", []string{"--wrokers", "2"}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			fs, _ := newSet(tt.env, &out, &errb)
			err := fs.Parse(tt.args)
			if !errors.Is(err, ErrUsage) {
				t.Fatalf("Parse = %v, want a usage error", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not name %q", err, tt.wantErr)
			}
			var msg bytes.Buffer
			if code := Exit("prog", err, &msg); code != 2 {
				t.Errorf("exit status %d, want 2", code)
			}
			if strings.Contains(msg.String(), "exit status") {
				t.Errorf("printed %q", msg.String())
			}
		})
	}
}

func TestUsageNamesEnv(t *testing.T) {
	var out, errb bytes.Buffer
	fs, _ := newSet(nil, &out, &errb)
	if err := fs.Parse([]string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("Parse(-h) = %v", err)
	}
	for _, want := range []string{"(env PROG_MAX_SILENT_TIME)", "(env PROG_HEALTH_CHECKS, one per line)",
		"(env PROG_EVAL_MEMORY, or PROG_EVAL_MEMORY_MB in MiB)"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, errb.String())
		}
	}
}

func TestFlagsJSON(t *testing.T) {
	var out, errb bytes.Buffer
	// The environment never leaks into the schema.
	fs, _ := newSet(map[string]string{"PROG_WORKERS": "9"}, &out, &errb)
	if err := fs.Parse([]string{"-flags-json"}); !errors.Is(err, ErrDone) {
		t.Fatalf("Parse(-flags-json) = %v", err)
	}
	var got Schema
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("schema is not JSON: %v\n%s", err, out.String())
	}
	if got.Program != "prog" || got.EnvPrefix != "PROG" || len(got.Flags) != 7 {
		t.Fatalf("schema %+v", got)
	}
	byName := map[string]*Flag{}
	for _, f := range got.Flags {
		byName[f.Name] = f
	}
	tests := []struct {
		name, typ, env string
		def            any
		secret, repeat bool
	}{
		{"workers", "int", "PROG_WORKERS", float64(1), false, false},
		{"max-silent-time", "duration", "PROG_MAX_SILENT_TIME", "30m0s", false, false},
		{"eval-memory", "size", "PROG_EVAL_MEMORY", float64(0), false, false},
		{"once", "bool", "PROG_ONCE", false, false, false},
		{"health-check", "string", "PROG_HEALTH_CHECKS", []any{}, false, true},
		{"token-file", "string", "PROG_TOKEN_FILE", "", true, false},
	}
	for _, tt := range tests {
		f := byName[tt.name]
		if f == nil {
			t.Errorf("no flag %s", tt.name)
			continue
		}
		if f.Type != tt.typ || f.Env != tt.env || fmt.Sprint(f.Default) != fmt.Sprint(tt.def) || f.Secret != tt.secret || f.Repeatable != tt.repeat {
			t.Errorf("%s: got %+v, want %+v", tt.name, *f, tt)
		}
	}
	if a := byName["eval-memory"].EnvAliases; len(a) != 1 || a[0].Name != "PROG_EVAL_MEMORY_MB" || a[0].Note != "MiB" {
		t.Errorf("eval-memory aliases %+v", a)
	}
	if u := byName["workers"].Usage; u != "workers" {
		t.Errorf("usage in the schema %q: want it without the env note", u)
	}
}

func TestExit(t *testing.T) {
	tests := []struct {
		err     error
		code    int
		printed string
	}{
		{nil, 0, ""},
		{flag.ErrHelp, 0, ""},
		{ErrDone, 0, ""},
		{usageShown, 2, ""},
		{Usagef("bad %s", "thing"), 2, "prog: bad thing\n"},
		{fmt.Errorf("serve: %w", errors.New("boom")), 1, "prog: serve: boom\n"},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		if code := Exit("prog", tt.err, &b); code != tt.code || b.String() != tt.printed {
			t.Errorf("Exit(%v) = %d, printed %q; want %d, %q", tt.err, code, b.String(), tt.code, tt.printed)
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"1048576", 1 << 20, true}, {"4GiB", 4 << 30, true}, {"512 MiB", 512 << 20, true},
		{"2KB", 2000, true}, {"7B", 7, true}, {"", 0, false}, {"GiB", 0, false}, {"1.5GiB", 0, false},
		{"-1", 0, false}, {"4gib", 0, false}, {"99999999999TiB", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestLogLevel(t *testing.T) {
	var out, errb bytes.Buffer
	fs := NewFlagSet("prog", "PROG", func(k string) string { return map[string]string{"PROG_LOG_LEVEL": "warn"}[k] }, &out, &errb)
	level := fs.LogLevel()
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	log := Logger(&b, level)
	log.Info("hidden")
	log.Warn("shown")
	if strings.Contains(b.String(), "hidden") || !strings.Contains(b.String(), "shown") {
		t.Fatalf("log at warn wrote %q", b.String())
	}
	if err := fs.Parse([]string{"--log-level", "loud"}); !errors.Is(err, ErrUsage) {
		t.Fatalf("--log-level loud: %v, want a usage error", err)
	}
}
