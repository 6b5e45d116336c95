package nixkey

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSignVerify(t *testing.T) {
	k, err := Generate("farm-test-1")
	if err != nil {
		t.Fatal(err)
	}
	sig, err := k.Sign("fingerprint")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKey(k.Public().String())
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Verify("fingerprint", sig) || pub.Verify("other", sig) {
		t.Fatal("signature does not verify exactly its fingerprint")
	}
	back, err := ParseSecretKey(k.String())
	if err != nil || back.Public().String() != pub.String() || back.Name() != "farm-test-1" {
		t.Fatalf("round trip: %v, %v", back.Public(), err)
	}
	if _, err := ParseSecretKey("nocolon"); !errors.Is(err, ErrBadKey) {
		t.Fatalf("ParseSecretKey(nocolon) = %v, want ErrBadKey", err)
	}
}

func TestLoadOrCreate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "key")
	k, created, err := LoadOrCreate(path, "farm-cache-1")
	if err != nil || !created {
		t.Fatalf("first LoadOrCreate: created %v, %v", created, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("new key file mode %04o, want 0600", fi.Mode().Perm())
	}
	again, created, err := LoadOrCreate(path, "farm-cache-1")
	if err != nil || created || again.String() != k.String() {
		t.Fatalf("second LoadOrCreate: created %v, same key %v, %v", created, again.String() == k.String(), err)
	}
	// A key others can read is refused, not replaced.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreate(path, "farm-cache-1"); !errors.Is(err, ErrKeyExposed) {
		t.Fatalf("LoadOrCreate of a 0644 key = %v, want ErrKeyExposed", err)
	}
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = LoadOrCreate(path, "farm-cache-1")
	if !errors.Is(err, ErrBadKey) || strings.Contains(err.Error(), "garbage") {
		t.Fatalf("LoadOrCreate of a malformed key = %v, want ErrBadKey without the file's bytes", err)
	}
}

func TestParsePublicKeys(t *testing.T) {
	a, _ := Generate("a-1")
	b, _ := Generate("b-1")
	tests := []struct {
		name    string
		data    string
		want    int
		wantErr string
	}{
		{"two keys, comments, blanks", "# farm\n" + a.Public().String() + "\n\n  " + b.Public().String() + "  \n", 2, ""},
		{"no key", "# nothing\n\n", 0, "holds no key"},
		{"bad line", a.Public().String() + "\nnot-a-key\n", 0, "keys.pub:2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := ParsePublicKeys("keys.pub", []byte(tt.data))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || len(keys) != tt.want {
				t.Fatalf("got %d keys, %v; want %d", len(keys), err, tt.want)
			}
		})
	}
}
