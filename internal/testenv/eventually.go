package testenv

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// Condition is what Eventually polls: a func() bool that reports whether
// the awaited state is reached, or a func() error that returns nil once it
// is (its last error is shown when it never does).
type Condition interface {
	func() bool | func() error
}

// Eventually polls cond until it holds and fails the test (t.Fatalf, so
// only from the test's goroutine) when it does not hold within timeout; msg
// (with args, as fmt.Sprintf) says what was awaited. It polls often at first
// and then every 50 ms, and always polls once more at the deadline.
func Eventually[C Condition](t testing.TB, timeout time.Duration, cond C, msg string, args ...any) {
	t.Helper()
	var check func() error
	switch c := any(cond).(type) {
	case func() bool:
		check = func() error {
			if c() {
				return nil
			}
			return errNotYet
		}
	case func() error:
		check = c
	}
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			what := fmt.Sprintf(msg, args...)
			if err == errNotYet {
				t.Fatalf("%s: not within %v", what, timeout)
			}
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(min(wait, time.Until(deadline)+time.Millisecond))
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// errNotYet is a func() bool condition's false.
var errNotYet = errors.New("condition not met")
