package ntfytest

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestPoll publishes through the HTTP API and polls with each form of since.
func TestPoll(t *testing.T) {
	s := New(t)
	base := time.Unix(1_700_000_000, 0)
	clock := base
	s.now = func() time.Time { return clock }
	for i, title := range []string{"one", "two", "three"} {
		clock = base.Add(time.Duration(i) * time.Minute)
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/farm", strings.NewReader("body "+title))
		req.Header.Set("Title", title)
		req.Header.Set("Priority", "high")
		req.Header.Set("Tags", "a, b")
		req.Header.Set("Click", "https://farm/#farm-event-1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	s.Store(Message{Topic: "other", Title: "elsewhere"})
	first := s.Messages()[0]
	if first.Priority != 4 || strings.Join(first.Tags, ",") != "a,b" || first.Message != "body one" || first.Event != "message" {
		t.Errorf("stored %+v", first)
	}
	tests := []struct {
		since string
		want  string
	}{
		{"", "one two three"},
		{"all", "one two three"},
		{"none", ""},
		{"latest", "three"},
		{first.ID, "two three"},
		{"1700000060", "two three"},
		{"90s", "two three"}, // clock is at 1700000120
	}
	for _, tt := range tests {
		t.Run("since="+tt.since, func(t *testing.T) {
			resp, err := http.Get(s.URL + "/farm/json?poll=1&since=" + tt.since)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var got []string
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				var m Message
				if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
					t.Fatal(err)
				}
				got = append(got, m.Title)
			}
			if strings.Join(got, " ") != tt.want {
				t.Errorf("poll since %q = %q, want %q", tt.since, got, tt.want)
			}
		})
	}
	s.FailPolls(http.StatusForbidden)
	resp, err := http.Get(s.URL + "/farm/json?poll=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("failed poll answered %s, want 403", resp.Status)
	}
}
