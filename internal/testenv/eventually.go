package testenv

import (
	"fmt"
	"testing"
	"time"
)

// Eventually checks cond every 10ms until it holds, and fails t with the
// message (fmt.Sprintf of format and args) when it still does not after
// timeout. It is the one polling loop of the tests.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, fmt.Sprintf(format, args...))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
