package s3

import (
	"net/url"
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		url     string
		want    config
		wantErr string // substring of the error; "" for none
	}{
		{
			url:  "s3://cache?endpoint=http://127.0.0.1:9000&region=us-east-1",
			want: config{bucket: "cache", host: "127.0.0.1:9000", region: "us-east-1"},
		},
		{
			url:  "s3://cache",
			want: config{bucket: "cache", host: "s3.amazonaws.com", secure: true},
		},
		{
			url:  "s3://cache?endpoint=https://minio.lan:9000&prefix=farm/x/",
			want: config{bucket: "cache", host: "minio.lan:9000", secure: true, prefix: "farm/x/"},
		},
		{
			url:  "s3://cache/farm?endpoint=http://[::1]:9000/",
			want: config{bucket: "cache", host: "[::1]:9000", prefix: "farm/"},
		},
		{
			// Nix's own form: a bare host and scheme=.
			url:  "s3://cache?endpoint=minio.lan:9000&scheme=http&profile=farm",
			want: config{bucket: "cache", host: "minio.lan:9000", profile: "farm"},
		},
		{
			url:  "s3://cache?endpoint=minio.lan",
			want: config{bucket: "cache", host: "minio.lan", secure: true},
		},
		{
			url: "s3://cache?access-key-file=/run/id&secret-key-file=/run/secret&session-token-file=/run/token",
			want: config{bucket: "cache", host: "s3.amazonaws.com", secure: true,
				keyFiles: keyFiles{accessKey: "/run/id", secretKey: "/run/secret", sessionToken: "/run/token"}},
		},
		{url: "file:///x", wantErr: `scheme "file" is not s3`},
		{url: "s3://AKIA:hunter2@cache", wantErr: "credentials in the URL are not accepted"},
		{url: "s3://?endpoint=http://127.0.0.1:9000", wantErr: "bucket"},
		{url: "s3://Bad_Bucket", wantErr: "bucket"},
		{url: "s3://cache?endpoint=ftp://host", wantErr: "scheme must be http or https"},
		{url: "s3://cache?endpoint=http://user:hunter2@host", wantErr: "credentials in the URL are not accepted"},
		{url: "s3://cache?endpoint=http://host/path", wantErr: "want scheme://host[:port] only"},
		{url: "s3://cache?endpoint=http://", wantErr: "no host"},
		{url: "s3://cache?endpoint=http://host&scheme=https", wantErr: "scheme= given with an endpoint"},
		{url: "s3://cache?secret-key=hunter2", wantErr: `unknown parameter "secret-key"`},
		{url: "s3://cache?region=a&region=b", wantErr: `parameter "region" given 2 times`},
		{url: "s3://cache/p?prefix=q", wantErr: "prefix given both"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			u, err := url.Parse(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseURL(u)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseURL error = %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("parseURL error %q shows the secret", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseURL: %v", err)
			}
			if got != tt.want {
				t.Errorf("parseURL =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}

func TestConfigString(t *testing.T) {
	u, _ := url.Parse("s3://cache/farm?endpoint=http://127.0.0.1:9000&region=us-east-1&access-key-file=/run/id&secret-key-file=/run/secret")
	cfg, err := parseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	want := "s3://cache?endpoint=http://127.0.0.1:9000&prefix=farm&region=us-east-1"
	if got := cfg.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
