package hostname_test

import (
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/homelab-farm/farm/internal/hostname"
)

// table is testdata/hostnames.json, shared with the Nix rule.
type table struct {
	Valid   []string `json:"valid"`
	Invalid []string `json:"invalid"`
}

func loadTable(t testing.TB) table {
	t.Helper()
	b, err := os.ReadFile("../../testdata/hostnames.json")
	if err != nil {
		t.Fatal(err)
	}
	var tb table
	if err := json.Unmarshal(b, &tb); err != nil {
		t.Fatalf("parse hostnames.json: %v", err)
	}
	if len(tb.Valid) == 0 || len(tb.Invalid) == 0 {
		t.Fatalf("hostnames.json has %d valid and %d invalid names; want both", len(tb.Valid), len(tb.Invalid))
	}
	return tb
}

func TestValidateSharedTable(t *testing.T) {
	tb := loadTable(t)
	for _, name := range tb.Valid {
		if err := hostname.Validate(name); err != nil {
			t.Errorf("Validate(%q) = %v, want nil", name, err)
		}
	}
	for _, name := range tb.Invalid {
		err := hostname.Validate(name)
		if !errors.Is(err, hostname.ErrInvalid) {
			t.Errorf("Validate(%q) = %v, want ErrInvalid", name, err)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	tests := []struct{ name, want string }{
		{"../x", `host name "../x" is not a valid host name`},
		{"a\nb", `host name "a\nb" is not a valid host name`},
		{"a\r\x00b", `host name "a\r\x00b" is not a valid host name`},
	}
	for _, tt := range tests {
		err := hostname.Validate(tt.name)
		if err == nil || err.Error() != tt.want {
			t.Errorf("Validate(%q) = %v, want %s", tt.name, err, tt.want)
		}
		if strings.ContainsAny(err.Error(), "\r\n\x00") {
			t.Errorf("error of %q carries a raw control character", tt.name)
		}
	}
}

// The rule as the regular expression the Nix side writes.
var labelRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

func FuzzValid(f *testing.F) {
	tb := loadTable(f)
	for _, n := range append(tb.Valid, tb.Invalid...) {
		f.Add(n)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if got, want := hostname.Valid(name), labelRE.MatchString(name); got != want {
			t.Fatalf("Valid(%q) = %v, the regular expression says %v", name, got, want)
		}
	})
}

func TestPlaceholder(t *testing.T) {
	tb := loadTable(t)
	seen := map[string]string{}
	for _, name := range tb.Invalid {
		p := hostname.Placeholder(name)
		if err := hostname.Validate(p); err != nil {
			t.Errorf("Placeholder(%q) = %q: %v", name, p, err)
		}
		if other, ok := seen[p]; ok {
			t.Errorf("Placeholder(%q) = Placeholder(%q) = %q", name, other, p)
		}
		seen[p] = name
	}
}
