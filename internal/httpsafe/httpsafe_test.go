package httpsafe_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/homelab-farm/farm/internal/httpsafe"
)

func TestBearer(t *testing.T) {
	want := []byte("s3cret")
	tests := []struct {
		header string
		ok     bool
	}{
		{"Bearer s3cret", true},
		{"bearer s3cret", true},
		{"BEARER s3cret", true},
		{"BeArEr s3cret", true},
		{"Bearer  s3cret", true},
		{"Basic s3cret", false},
		{"Bearer s3cre", false},
		{"Bearer s3cret2", false},
		{"Bearers3cret", false},
		{"s3cret", false},
		{"Bearer ", false},
		{"", false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if tt.header != "" {
			r.Header.Set("Authorization", tt.header)
		}
		if got := httpsafe.Bearer(r, want); got != tt.ok {
			t.Errorf("Bearer(%q) = %v, want %v", tt.header, got, tt.ok)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer ")
	if httpsafe.Bearer(r, nil) {
		t.Error("an empty token matched an empty want")
	}
}

func TestBudget(t *testing.T) {
	b := httpsafe.NewBudget(100)
	if !b.TryTake(60) || !b.TryTake(40) {
		t.Fatal("could not take 60+40 of 100")
	}
	if b.TryTake(1) {
		t.Fatal("took past the total")
	}
	b.Give(60)
	if got := b.Used(); got != 40 {
		t.Errorf("Used() = %d, want 40", got)
	}
	if b.TryTake(61) || !b.TryTake(60) {
		t.Error("after giving 60 back: want 60 to fit and 61 not")
	}
	if b.TryTake(-1) {
		t.Error("took a negative amount")
	}
}

func TestSlots(t *testing.T) {
	s := httpsafe.NewSlots(2)
	r1, ok1 := s.TryTake()
	_, ok2 := s.TryTake()
	if !ok1 || !ok2 {
		t.Fatal("could not take 2 of 2 slots")
	}
	if _, ok := s.TryTake(); ok {
		t.Fatal("took a third slot of 2")
	}
	r1()
	r1() // a second release is a no-op
	if got := s.InUse(); got != 1 {
		t.Errorf("InUse() = %d, want 1", got)
	}
}

func TestNoSniff(t *testing.T) {
	h := httpsafe.NoSniff(http.NotFoundHandler())
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/x", nil))
	if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
	}
}
