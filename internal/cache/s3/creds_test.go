package s3

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResolveCreds(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	idFile := write("id", "AKIDFILE\n", 0o600)
	secretFile := write("secret", "s3cr3t-file\n", 0o600)
	tokenFile := write("token", "token-from-file", 0o600)
	emptyFile := write("empty", "\n", 0o600)
	twoLines := write("two", "a\nb\n", 0o600)
	// A directory: unreadable as a file even for root, unlike mode 000.
	unreadable := filepath.Join(dir, "unreadable")
	if err := os.Mkdir(unreadable, 0o700); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	shared := write("credentials", "[default]\naws_access_key_id = AKIDSHARED\naws_secret_access_key = s3cr3t-shared\n\n[farm]\naws_access_key_id = AKIDFARM\naws_secret_access_key = s3cr3t-farm\n", 0o600)
	garbled := write("garbled", "[default\naws_secret_access_key = hunter2\n", 0o600)
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".aws"), 0o755); err != nil {
		t.Fatal(err)
	}
	write("../"+filepath.Base(home)+"/.aws/credentials", "[default]\naws_access_key_id = AKIDHOME\naws_secret_access_key = s3cr3t-home\n", 0o600)

	tests := []struct {
		name    string
		url     string
		env     map[string]string
		wantID  string // "" for anonymous
		wantTok string
		wantErr string // substring; "" for none
	}{
		{name: "none is anonymous", url: "s3://bkt", wantID: ""},
		{
			name: "environment",
			env:  map[string]string{"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "s3cr3t-env", "AWS_SESSION_TOKEN": "tok"},
			url:  "s3://bkt", wantID: "AKIDENV", wantTok: "tok",
		},
		{
			name: "environment files win over environment values",
			env: map[string]string{"AWS_ACCESS_KEY_ID_FILE": idFile, "AWS_SECRET_ACCESS_KEY_FILE": secretFile, "AWS_SESSION_TOKEN_FILE": tokenFile,
				"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "s3cr3t-env"},
			url: "s3://bkt", wantID: "AKIDFILE", wantTok: "token-from-file",
		},
		{
			name: "URL files win over the environment",
			env:  map[string]string{"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "s3cr3t-env"},
			url:  "s3://bkt?access-key-file=" + idFile + "&secret-key-file=" + secretFile, wantID: "AKIDFILE",
		},
		{
			name: "shared file, default profile",
			env:  map[string]string{"AWS_SHARED_CREDENTIALS_FILE": shared},
			url:  "s3://bkt", wantID: "AKIDSHARED",
		},
		{
			name: "shared file, profile from AWS_PROFILE",
			env:  map[string]string{"AWS_SHARED_CREDENTIALS_FILE": shared, "AWS_PROFILE": "farm"},
			url:  "s3://bkt", wantID: "AKIDFARM",
		},
		{
			name: "shared file, profile from the URL",
			env:  map[string]string{"AWS_SHARED_CREDENTIALS_FILE": shared, "AWS_PROFILE": "other"},
			url:  "s3://bkt?profile=farm", wantID: "AKIDFARM",
		},
		{name: "shared file under HOME", env: map[string]string{"HOME": home}, url: "s3://bkt", wantID: "AKIDHOME"},
		{name: "no shared file under HOME is anonymous", env: map[string]string{"HOME": dir}, url: "s3://bkt", wantID: ""},

		{name: "id without secret", env: map[string]string{"AWS_ACCESS_KEY_ID": "AKIDENV"}, url: "s3://bkt", wantErr: "AWS_SECRET_ACCESS_KEY is not"},
		{name: "secret without id", env: map[string]string{"AWS_SECRET_ACCESS_KEY": "hunter2"}, url: "s3://bkt", wantErr: "AWS_ACCESS_KEY_ID is not"},
		{name: "id file without secret file", env: map[string]string{"AWS_ACCESS_KEY_ID_FILE": idFile}, url: "s3://bkt", wantErr: "AWS_SECRET_ACCESS_KEY_FILE is not"},
		{name: "URL secret file without id file", url: "s3://bkt?secret-key-file=" + secretFile, wantErr: "access-key-file is not"},
		{
			name: "missing file",
			env:  map[string]string{"AWS_ACCESS_KEY_ID_FILE": idFile, "AWS_SECRET_ACCESS_KEY_FILE": missing},
			url:  "s3://bkt", wantErr: missing + ": no such file",
		},
		{
			name: "unreadable file",
			env:  map[string]string{"AWS_ACCESS_KEY_ID_FILE": unreadable, "AWS_SECRET_ACCESS_KEY_FILE": secretFile},
			url:  "s3://bkt", wantErr: unreadable + ": is a directory",
		},
		{
			name: "empty file",
			url:  "s3://bkt?access-key-file=" + idFile + "&secret-key-file=" + emptyFile, wantErr: emptyFile + " is empty",
		},
		{
			name: "two-line file",
			url:  "s3://bkt?access-key-file=" + twoLines + "&secret-key-file=" + secretFile, wantErr: twoLines + " holds more than one line",
		},
		{name: "named shared file missing", env: map[string]string{"AWS_SHARED_CREDENTIALS_FILE": missing}, url: "s3://bkt", wantErr: missing},
		{name: "shared file unreadable", env: map[string]string{"AWS_SHARED_CREDENTIALS_FILE": unreadable}, url: "s3://bkt", wantErr: unreadable + ": is a directory"},
		{name: "shared file garbled", env: map[string]string{"AWS_SHARED_CREDENTIALS_FILE": garbled}, url: "s3://bkt", wantErr: garbled + ": no usable credentials"},
		{name: "unknown profile", env: map[string]string{"AWS_SHARED_CREDENTIALS_FILE": shared}, url: "s3://bkt?profile=nope", wantErr: `profile "nope"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := url.Parse(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := parseURL(u)
			if err != nil {
				t.Fatalf("parseURL: %v", err)
			}
			getenv := func(k string) string { return tt.env[k] }
			cr, err := resolveCreds(cfg, getenv)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("resolveCreds error = %v, want one containing %q", err, tt.wantErr)
				}
				for _, secret := range []string{"hunter2", "s3cr3t"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("resolveCreds error %q shows a secret", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("resolveCreds: %v", err)
			}
			v, err := cr.provider.Get()
			if err != nil {
				t.Fatalf("credentials: %v", err)
			}
			if v.AccessKeyID != tt.wantID || v.SessionToken != tt.wantTok {
				t.Errorf("credentials = id %q token %q (from %s), want id %q token %q", v.AccessKeyID, v.SessionToken, cr.source, tt.wantID, tt.wantTok)
			}
			if strings.Contains(cr.source, "s3cr3t") {
				t.Errorf("source %q shows a secret", cr.source)
			}
		})
	}
}
