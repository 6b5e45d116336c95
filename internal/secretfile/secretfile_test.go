package secretfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		path    string
		line    bool
		want    string
		wantErr string
		empty   bool
	}{
		{name: "trimmed", path: write("a", "  s3cret\n"), want: "s3cret"},
		{name: "two lines kept by Read", path: write("b", "one\ntwo\n"), want: "one\ntwo"},
		{name: "two lines refused by ReadLine", path: write("c", "one\ntwo\n"), line: true, wantErr: "more than one line"},
		{name: "empty", path: write("d", ""), wantErr: "is empty", empty: true},
		{name: "white space only", path: write("e", " \n\t\n"), wantErr: "is empty", empty: true},
		{name: "missing", path: filepath.Join(dir, "missing"), wantErr: "no such file"},
		{name: "no path", path: "", wantErr: "no token file given"},
		{name: "too large", path: write("f", strings.Repeat("x", MaxSize+1)), wantErr: "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			read := Read
			if tt.line {
				read = ReadLine
			}
			got, err := read(tt.path, "token")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %q, %v; want error containing %q", got, err, tt.wantErr)
				}
				if errors.Is(err, ErrEmpty) != tt.empty {
					t.Errorf("errors.Is(%v, ErrEmpty) = %v, want %v", err, !tt.empty, tt.empty)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// The contents of a secret file never appear in an error.
func TestReadErrorsHideContents(t *testing.T) {
	p := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(p, []byte("hunter2\nhunter3"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := ReadLine(p, "token")
	if err == nil || strings.Contains(err.Error(), "hunter") {
		t.Fatalf("error %v: want one that does not quote the file", err)
	}
}
