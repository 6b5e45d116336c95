package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSinkRecords(t *testing.T) {
	dir := t.TempDir()
	srv := httptest.NewServer(&sink{dir: dir})
	defer srv.Close()
	post := func(path, body string, hdr map[string]string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	sha := strings.Repeat("ab", 20)
	for _, tc := range []struct {
		path, body string
		hdr        map[string]string
		want       int
	}{
		{"/farm-demo", "stolas failed", map[string]string{"Title": "farm: stolas failed"}, 200},
		{"/repos/demo/homelab/statuses/" + sha, `{"state":"failure","context":"farm/host/stolas"}`, nil, 201},
		{"/api/v1/repos/demo/homelab/statuses/" + sha, `{"state":"success","context":"farm/eval"}`, nil, 201},
		{"/repos/demo/homelab/statuses/" + sha, `not json`, nil, 400},
		{"/a/b", "x", nil, 404},
		{"/../etc", "x", nil, 404},
	} {
		if got := post(tc.path, tc.body, tc.hdr); got != tc.want {
			t.Errorf("POST %s: %d, want %d", tc.path, got, tc.want)
		}
	}
	ntfy, err := os.ReadFile(filepath.Join(dir, "ntfy.jsonl"))
	if err != nil || !strings.Contains(string(ntfy), `"title":"farm: stolas failed"`) || strings.Count(string(ntfy), "\n") != 1 {
		t.Errorf("ntfy.jsonl = %q, %v", ntfy, err)
	}
	st, err := os.ReadFile(filepath.Join(dir, "statuses.jsonl"))
	if err != nil || strings.Count(string(st), "\n") != 2 || !strings.Contains(string(st), `"context":"farm/host/stolas"`) {
		t.Errorf("statuses.jsonl = %q, %v", st, err)
	}
}
