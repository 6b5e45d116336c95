package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
)

// FlagSet is a flag.FlagSet whose every flag falls back to an environment
// variable: the program's prefix and the flag's name in upper case, dashes
// as underscores (--max-silent-time of prefix BUILDER reads
// BUILDER_MAX_SILENT_TIME; a repeatable flag's variable is plural,
// --health-check reads AGENT_HEALTH_CHECKS). The command line wins over
// the environment, which wins over the default. Environment values are
// parsed by the flag's own Set, so BUILDER_WORKERS=two is an error just as
// --workers two is. Each flag's usage ends with "(env NAME)".
type FlagSet struct {
	fs        *flag.FlagSet
	prefix    string
	getenv    func(string) string
	stdout    io.Writer
	flags     []*Flag
	byName    map[string]*Flag
	flagsJSON bool
}

// Flag is one flag as -flags-json describes it.
type Flag struct {
	Name string `json:"name"`
	// Type is string, int, bool, duration (Go's "90s", "5m"), size (bytes,
	// or a number with a unit: "4GiB", "512MiB") or the name a Var gave.
	Type    string `json:"type"`
	Default any    `json:"default"`
	Env     string `json:"env"`
	// EnvAliases are older variable names still read, after Env.
	EnvAliases []EnvAlias `json:"envAliases,omitempty"`
	// Secret marks a flag naming a file (or directory) that holds secrets.
	Secret bool `json:"secret"`
	// Repeatable flags collect every value given; their variable holds
	// several, split as EnvSplit says.
	Repeatable bool   `json:"repeatable"`
	EnvSplit   string `json:"envSplit,omitempty"`
	// Usage is the help text; Placeholder the name of the value it
	// mentions (the word in back quotes in the Go source: "file", "URL").
	Usage       string `json:"usage"`
	Placeholder string `json:"placeholder,omitempty"`

	split func(string) []string
}

// EnvAlias is an older environment variable a flag still reads.
type EnvAlias struct {
	Name string `json:"name"`
	// Note says how its value differs from the flag's ("MiB").
	Note    string `json:"note,omitempty"`
	convert func(string) (string, error)
}

// Schema is what -flags-json prints.
type Schema struct {
	Program   string  `json:"program"`
	EnvPrefix string  `json:"envPrefix"`
	Flags     []*Flag `json:"flags"`
}

// NewFlagSet returns an empty flag set for program name (as usage shows it:
// "builder serve") whose environment variables start with prefix_. Usage
// and errors go to stderr, -flags-json to stdout.
func NewFlagSet(name, prefix string, getenv func(string) string, stdout, stderr io.Writer) *FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	s := &FlagSet{fs: fs, prefix: prefix, getenv: getenv, stdout: stdout, byName: map[string]*Flag{}}
	fs.BoolVar(&s.flagsJSON, "flags-json", false, "print the flags as JSON and exit")
	return s
}

// EnvName is the environment variable of the flag name: prefix_NAME.
func (s *FlagSet) EnvName(name string) string {
	return s.prefix + "_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

func (s *FlagSet) add(v flag.Value, name, typ string, def any, usage string) *Flag {
	f := &Flag{Name: name, Type: typ, Default: def, Env: s.EnvName(name)}
	f.Placeholder, f.Usage = unquote(usage)
	s.fs.Var(v, name, usage)
	s.flags = append(s.flags, f)
	s.byName[name] = f
	s.setUsage(f)
	return f
}

// setUsage appends the environment variables to the usage -h shows.
func (s *FlagSet) setUsage(f *Flag) {
	env := "env " + f.Env
	if f.Repeatable && f.EnvSplit != "" {
		env += ", " + f.EnvSplit
	}
	for _, a := range f.EnvAliases {
		env += ", or " + a.Name
		if a.Note != "" {
			env += " in " + a.Note
		}
	}
	fl := s.fs.Lookup(f.Name)
	fl.Usage = usageOf(fl.Usage) + " (" + env + ")"
}

// usageOf is a usage without the environment note setUsage appended.
func usageOf(u string) string {
	if i := strings.LastIndex(u, " (env "); i >= 0 {
		return u[:i]
	}
	return u
}

// unquote splits the back-quoted placeholder off a usage, as flag does.
func unquote(usage string) (placeholder, text string) {
	i := strings.IndexByte(usage, '`')
	if i < 0 {
		return "", usage
	}
	j := strings.IndexByte(usage[i+1:], '`')
	if j < 0 {
		return "", usage
	}
	name := usage[i+1 : i+1+j]
	return name, usage[:i] + name + usage[i+1+j+1:]
}

// StringVar defines a string flag.
func (s *FlagSet) StringVar(p *string, name, def, usage string) {
	*p = def
	s.add((*stringValue)(p), name, "string", def, usage)
}

// String defines a string flag.
func (s *FlagSet) String(name, def, usage string) *string {
	p := new(string)
	s.StringVar(p, name, def, usage)
	return p
}

// SecretFileVar defines a flag naming a file that holds a secret (read it
// with secretfile.Read). Secrets are never given on the command line or in
// the environment themselves.
func (s *FlagSet) SecretFileVar(p *string, name, usage string) {
	*p = ""
	s.add((*stringValue)(p), name, "string", "", usage).Secret = true
}

// SecretFile defines a flag naming a file that holds a secret.
func (s *FlagSet) SecretFile(name, usage string) *string {
	p := new(string)
	s.SecretFileVar(p, name, usage)
	return p
}

// IntVar defines an int flag.
func (s *FlagSet) IntVar(p *int, name string, def int, usage string) {
	*p = def
	s.add((*intValue)(p), name, "int", def, usage)
}

// Int defines an int flag.
func (s *FlagSet) Int(name string, def int, usage string) *int {
	p := new(int)
	s.IntVar(p, name, def, usage)
	return p
}

// BoolVar defines a bool flag.
func (s *FlagSet) BoolVar(p *bool, name string, def bool, usage string) {
	*p = def
	s.add((*boolValue)(p), name, "bool", def, usage)
}

// Bool defines a bool flag.
func (s *FlagSet) Bool(name string, def bool, usage string) *bool {
	p := new(bool)
	s.BoolVar(p, name, def, usage)
	return p
}

// DurationVar defines a duration flag ("90s", "5m", "4h").
func (s *FlagSet) DurationVar(p *time.Duration, name string, def time.Duration, usage string) {
	*p = def
	s.add((*durationValue)(p), name, "duration", def.String(), usage)
}

// Duration defines a duration flag.
func (s *FlagSet) Duration(name string, def time.Duration, usage string) *time.Duration {
	p := new(time.Duration)
	s.DurationVar(p, name, def, usage)
	return p
}

// SizeVar defines a size flag in bytes, given as a number of bytes or
// with a unit (ParseSize: "4GiB").
func (s *FlagSet) SizeVar(p *int64, name string, def int64, usage string) {
	*p = def
	s.add((*sizeValue)(p), name, "size", def, usage)
}

// Size defines a size flag in bytes.
func (s *FlagSet) Size(name string, def int64, usage string) *int64 {
	p := new(int64)
	s.SizeVar(p, name, def, usage)
	return p
}

// StringsVar defines a repeatable string flag. Its environment variable
// (plural: --health-check, AGENT_HEALTH_CHECKS) holds several values,
// split as split says (Lines, Fields); sep describes that for -h and the
// schema ("one per line").
func (s *FlagSet) StringsVar(p *[]string, name string, split func(string) []string, sep, usage string) {
	s.Var((*stringsValue)(p), name, "string", split, sep, usage)
}

// Var defines a flag of any flag.Value, typ naming its type in the
// schema. With split it is repeatable: every value given on the command
// line is Set, and so is each part of its environment variable.
func (s *FlagSet) Var(v flag.Value, name, typ string, split func(string) []string, sep, usage string) {
	f := &Flag{Name: name, Type: typ, Env: s.EnvName(name)}
	f.Placeholder, f.Usage = unquote(usage)
	if split != nil {
		f.Repeatable, f.Env, f.EnvSplit, f.split = true, f.Env+"S", sep, split
		f.Default = []string{}
	} else {
		f.Default = v.String()
	}
	s.fs.Var(v, name, usage)
	s.flags = append(s.flags, f)
	s.byName[name] = f
	s.setUsage(f)
}

// Lines splits a value into its non-empty lines, trimmed.
func Lines(v string) []string {
	var out []string
	for _, l := range strings.Split(v, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// Fields splits a value at white space.
func Fields(v string) []string { return strings.Fields(v) }

// Whole keeps a value whole: the flag's Set splits it itself.
func Whole(v string) []string { return []string{v} }

// EnvAlias makes flag name also read the environment variable env when its
// own is empty; convert (nil: none) turns env's value into the flag's
// form, note says how it differs ("MiB").
func (s *FlagSet) EnvAlias(name, env, note string, convert func(string) (string, error)) {
	f := s.byName[name]
	if f == nil {
		panic("cli: EnvAlias of undefined flag " + name)
	}
	f.EnvAliases = append(f.EnvAliases, EnvAlias{Name: env, Note: note, convert: convert})
	s.setUsage(f)
}

// LogLevel defines --log-level: debug, info, warn or error.
func (s *FlagSet) LogLevel() *slog.LevelVar {
	l := new(slog.LevelVar)
	f := s.add(levelValue{l}, "log-level", "string", "info", "what to log: debug, info, warn or error")
	f.Default = "info"
	return l
}

// Logger is the program's one logger: text on w, at level.
func Logger(w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// Parse parses args, then fills each flag the command line did not set
// from its environment variable. It returns flag.ErrHelp after -h, ErrDone
// after -flags-json printed the schema, and a usage error (ErrUsage) for
// a malformed flag or variable.
func (s *FlagSet) Parse(args []string) error {
	if err := s.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageShown
	}
	if s.flagsJSON {
		b, err := json.MarshalIndent(s.Schema(), "", "  ")
		if err != nil {
			return fmt.Errorf("flags json: %w", err)
		}
		if _, err := s.stdout.Write(append(b, '\n')); err != nil {
			return fmt.Errorf("flags json: %w", err)
		}
		return ErrDone
	}
	set := map[string]bool{}
	s.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, f := range s.flags {
		if set[f.Name] {
			continue
		}
		if err := s.fromEnv(f); err != nil {
			return err
		}
	}
	return nil
}

// fromEnv sets f from the first of its variables that is not empty.
func (s *FlagSet) fromEnv(f *Flag) error {
	env, v := f.Env, s.getenv(f.Env)
	if v == "" {
		for _, a := range f.EnvAliases {
			if v = s.getenv(a.Name); v == "" {
				continue
			}
			env = a.Name
			if a.convert != nil {
				c, err := a.convert(v)
				if err != nil {
					return Usagef("%s=%q: %v", a.Name, v, err)
				}
				v = c
			}
			break
		}
	}
	if v == "" {
		return nil
	}
	values := []string{v}
	if f.split != nil {
		values = f.split(v)
	}
	for _, part := range values {
		if err := s.fs.Set(f.Name, part); err != nil {
			return Usagef("%s=%q: %v (as for --%s)", env, v, err, f.Name)
		}
	}
	return nil
}

// Schema describes every flag, in the order defined, with its default
// (never the environment's value).
func (s *FlagSet) Schema() Schema {
	return Schema{Program: s.fs.Name(), EnvPrefix: s.prefix, Flags: s.flags}
}

// NoArgs is a usage error when arguments follow the flags.
func (s *FlagSet) NoArgs() error {
	if s.fs.NArg() > 0 {
		return Usagef("%s: unexpected arguments %q", s.fs.Name(), s.fs.Args())
	}
	return nil
}

// Args returns the arguments after the flags.
func (s *FlagSet) Args() []string { return s.fs.Args() }

// NArg returns the number of arguments after the flags.
func (s *FlagSet) NArg() int { return s.fs.NArg() }

// IsSet reports whether the flag name was set, on the command line or
// through its environment variable.
func (s *FlagSet) IsSet(name string) bool {
	found := false
	s.fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}
