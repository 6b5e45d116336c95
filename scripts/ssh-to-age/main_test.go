package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// testdata/key is a throwaway key made for this test; key.pub.age and key.age were
// checked when it was made: `age-keygen -y key.age` prints key.pub.age.
func TestConvert(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"public key", []string{"-i", "testdata/key.pub"}, "testdata/key.pub.age"},
		{"private key", []string{"-private-key", "-i", "testdata/key"}, "testdata/key.age"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := run(tt.args, nil, &out); err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(tt.want)
			if err != nil {
				t.Fatal(err)
			}
			if got := out.String(); got != string(want) {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

// A fresh key: the identity from its private half has, for age itself, the public
// key this program derives from its public half.
func TestAgreesWithAge(t *testing.T) {
	for _, tool := range []string{"ssh-keygen", "age-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not found (scripts/setup fleet installs it)", tool)
			}
			t.Skipf("%s not found", tool)
		}
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "k")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	var pub, sec bytes.Buffer
	if err := run([]string{"-i", key + ".pub"}, nil, &pub); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"-private-key", "-i", key}, nil, &sec); err != nil {
		t.Fatal(err)
	}
	id := filepath.Join(dir, "id.age")
	if err := os.WriteFile(id, sec.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := exec.Command("age-keygen", "-y", id).Output()
	if err != nil {
		t.Fatalf("age-keygen -y: %v", err)
	}
	if strings.TrimSpace(string(got)) != strings.TrimSpace(pub.String()) {
		t.Errorf("age-keygen -y of the identity = %s, the recipient from the public key = %s", got, pub.String())
	}
}

func TestRefuses(t *testing.T) {
	dir := t.TempDir()
	rsa := filepath.Join(dir, "rsa.pub")
	if err := os.WriteFile(rsa, []byte("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ== x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"-i", rsa}, {"-private-key", "-i", rsa}, {"-i", filepath.Join(dir, "missing")}} {
		if err := run(args, nil, new(bytes.Buffer)); err == nil {
			t.Errorf("run %v: no error", args)
		}
	}
}
