package nix

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Machine is one remote build machine of Nix's `builders` setting (or of a
// machines file such as /etc/nix/machines, which NixOS writes from
// nix.buildMachines). Its fields are the columns Nix documents, in order;
// "-" or a missing column takes Nix's default.
type Machine struct {
	// URI is the remote store: "ssh://[user@]host", "ssh-ng://[user@]host"
	// (optionally with "?ssh-key=…" and other store parameters). A bare
	// "[user@]host" gets "ssh://" prepended, as Nix does.
	URI string
	// Systems are the platform types the machine builds; the default is the
	// local system.
	Systems []string
	// SSHKey is the SSH identity file; empty: SSH's regular identities.
	SSHKey string
	// MaxJobs is how many builds Nix runs there at once (default 1). A
	// machine with 0 never gets a build.
	MaxJobs int
	// SpeedFactor is the relative speed; Nix prefers faster machines (default
	// 1).
	SpeedFactor float64
	// SupportedFeatures are the system features the machine offers (kvm,
	// big-parallel, …), its mandatory features included.
	SupportedFeatures []string
	// MandatoryFeatures: the machine only builds derivations whose
	// requiredSystemFeatures contain all of these.
	MandatoryFeatures []string
	// PublicHostKey is the machine's SSH host public key, base64-encoded as
	// Nix expects it; empty: SSH's known_hosts decides.
	PublicHostKey string
	// Source says where the entry came from ("builders entry 2",
	// "/etc/nix/machines:3"), for messages.
	Source string
}

// ErrBadMachine is wrapped by every error about a malformed machine entry.
var ErrBadMachine = errors.New("bad machine specification")

// ParseMachines parses Nix's `builders` syntax: entries separated by ";" or
// newlines, "#" starting a comment, "@path" including a machines file (a file
// that does not exist includes nothing, as in Nix). Systems default to
// localSystem. A malformed entry is an error naming its place and its text;
// an empty spec is no machines.
func ParseMachines(spec, localSystem string) ([]Machine, error) {
	return parseMachines(spec, localSystem, "builders entry ", map[string]bool{})
}

func parseMachines(spec, localSystem, where string, including map[string]bool) ([]Machine, error) {
	var machines []Machine
	n := 0
	// Entries are numbered as split, empty ones included, so that in a file
	// without ";" an entry's number is its line number.
	for _, line := range strings.Split(strings.ReplaceAll(spec, ";", "\n"), "\n") {
		n++
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		source := where + strconv.Itoa(n)
		if file, ok := strings.CutPrefix(line, "@"); ok {
			file = strings.TrimSpace(file)
			if including[file] {
				return nil, fmt.Errorf("%s: %q includes itself: %w", source, file, ErrBadMachine)
			}
			b, err := os.ReadFile(file)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("read machines file %s: %w", file, err)
			}
			including[file] = true
			included, err := parseMachines(string(b), localSystem, file+":", including)
			delete(including, file)
			if err != nil {
				return nil, err
			}
			machines = append(machines, included...)
			continue
		}
		m, err := parseMachine(line, localSystem)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", source, line, err)
		}
		m.Source = source
		machines = append(machines, m)
	}
	return machines, nil
}

func parseMachine(line, localSystem string) (Machine, error) {
	f := strings.Fields(line)
	set := func(i int) bool { return len(f) > i && f[i] != "-" }
	if len(f) > 8 {
		return Machine{}, fmt.Errorf("%d columns, at most 8 (uri systems ssh-key max-jobs speed-factor supported-features mandatory-features public-host-key): %w", len(f), ErrBadMachine)
	}
	if !set(0) {
		return Machine{}, fmt.Errorf("no store URI in the first column: %w", ErrBadMachine)
	}
	m := Machine{URI: storeURI(f[0]), Systems: []string{localSystem}, MaxJobs: 1, SpeedFactor: 1}
	scheme, _, _ := strings.Cut(m.URI, "://")
	if scheme != "ssh" && scheme != "ssh-ng" {
		return Machine{}, fmt.Errorf("store URI %q: scheme %q, want ssh:// or ssh-ng://: %w", f[0], scheme, ErrBadMachine)
	}
	if set(1) {
		m.Systems = list(f[1])
	}
	if set(2) {
		m.SSHKey = f[2]
	}
	if set(3) {
		n, err := strconv.ParseUint(f[3], 10, 31)
		if err != nil {
			return Machine{}, fmt.Errorf("max jobs %q is not a whole number: %w", f[3], ErrBadMachine)
		}
		m.MaxJobs = int(n)
	}
	if set(4) {
		s, err := strconv.ParseFloat(f[4], 64)
		if err != nil || s < 0 || s != s || s > 1e9 {
			return Machine{}, fmt.Errorf("speed factor %q is not a non-negative number: %w", f[4], ErrBadMachine)
		}
		m.SpeedFactor = s
	}
	if set(6) {
		m.MandatoryFeatures = list(f[6])
	}
	if set(5) {
		m.SupportedFeatures = list(f[5])
	}
	for _, feat := range m.MandatoryFeatures {
		if !slices.Contains(m.SupportedFeatures, feat) {
			m.SupportedFeatures = append(m.SupportedFeatures, feat)
		}
	}
	if set(7) {
		if _, err := base64.StdEncoding.DecodeString(f[7]); err != nil {
			return Machine{}, fmt.Errorf("public host key is not base64: %w", ErrBadMachine)
		}
		m.PublicHostKey = f[7]
	}
	return m, nil
}

// storeURI prepends "ssh://" to a bare "[user@]host", as Nix does for
// backward compatibility.
func storeURI(s string) string {
	if strings.Contains(s, "://") || strings.Contains(s, "/") || strings.HasPrefix(s, "?") ||
		slices.Contains([]string{"auto", "daemon", "local"}, strings.SplitN(s, "?", 2)[0]) {
		return s
	}
	return "ssh://" + s
}

// list splits a comma-separated column, dropping empty items.
func list(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' })
}

// Host returns the machine's [user@]host (without scheme or parameters), for
// messages.
func (m Machine) Host() string {
	_, rest, _ := strings.Cut(m.URI, "://")
	rest, _, _ = strings.Cut(rest, "?")
	return rest
}

// Line is the machine as one entry of Nix's `builders` syntax, every column
// given ("-" for an empty one): ParseMachines reads it back as m (Source
// aside).
func (m Machine) Line() string {
	col := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	return strings.Join([]string{
		m.URI,
		col(strings.Join(m.Systems, ",")),
		col(m.SSHKey),
		strconv.Itoa(m.MaxJobs),
		strconv.FormatFloat(m.SpeedFactor, 'g', -1, 64),
		col(strings.Join(m.SupportedFeatures, ",")),
		col(strings.Join(m.MandatoryFeatures, ",")),
		col(m.PublicHostKey),
	}, " ")
}

// Builds reports whether Nix would send a derivation for system that
// requires features to this machine: the machine takes jobs, serves the
// system (every machine serves "builtin"), supports every required feature,
// and every one of its mandatory features is required.
func (m Machine) Builds(system string, features []string) bool {
	if m.MaxJobs <= 0 {
		return false
	}
	if system != "builtin" && !slices.Contains(m.Systems, system) {
		return false
	}
	for _, f := range features {
		if !slices.Contains(m.SupportedFeatures, f) {
			return false
		}
	}
	for _, f := range m.MandatoryFeatures {
		if !slices.Contains(features, f) {
			return false
		}
	}
	return true
}

// MachinesFor returns the machines that can build a derivation for system
// requiring features, fastest (highest speed factor) first, keeping the
// configured order among equals.
func MachinesFor(machines []Machine, system string, features []string) []Machine {
	var out []Machine
	for _, m := range machines {
		if m.Builds(system, features) {
			out = append(out, m)
		}
	}
	slices.SortStableFunc(out, func(a, b Machine) int { return cmp.Compare(b.SpeedFactor, a.SpeedFactor) })
	return out
}

// HasBuilder reports whether any machine builds system derivations that
// require no special features: the farm's "no builder for <system>"
// decision for a system the local machine cannot build itself.
func HasBuilder(machines []Machine, system string) bool {
	return len(MachinesFor(machines, system, nil)) > 0
}

// MachineSystems returns every system some machine builds, sorted and
// without repeats.
func MachineSystems(machines []Machine) []string {
	var out []string
	for _, m := range machines {
		if m.MaxJobs > 0 {
			out = append(out, m.Systems...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Machines returns the remote build machines of builders, or of Nix's own
// `builders` setting (nix.conf, /etc/nix/machines) when builders is empty.
// Systems left to default are the local system.
func (c *Client) Machines(ctx context.Context, builders string) ([]Machine, error) {
	cfg, err := c.buildConfig(ctx)
	if err != nil {
		return nil, err
	}
	return cfg.machines(builders)
}
