package testenv_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/testenv"
)

// fatalTB records a Fatalf instead of failing the test.
type fatalTB struct {
	testing.TB
	msg string
}

type fatal struct{}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(fatal{})
}

// run calls Eventually through f and returns the Fatalf message ("" if none).
func run[C testenv.Condition](t *testing.T, timeout time.Duration, cond C) (msg string) {
	f := &fatalTB{TB: t}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(fatal); !ok {
				panic(r)
			}
			msg = f.msg
		}
	}()
	testenv.Eventually(f, timeout, cond, "waiting for %s", "the thing")
	return ""
}

func TestEventually(t *testing.T) {
	calls := 0
	if msg := run(t, 5*time.Second, func() bool { calls++; return calls == 3 }); msg != "" || calls != 3 {
		t.Errorf("a condition true at the third poll: failed %q after %d polls", msg, calls)
	}
	calls = 0
	if msg := run(t, 5*time.Second, func() error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	}); msg != "" || calls != 3 {
		t.Errorf("an error condition nil at the third poll: failed %q after %d polls", msg, calls)
	}

	start := time.Now()
	msg := run(t, 100*time.Millisecond, func() bool { return false })
	if took := time.Since(start); took < 100*time.Millisecond {
		t.Errorf("gave up after %v, before the timeout", took)
	}
	if msg != "waiting for the thing: not within 100ms" {
		t.Errorf("never true: message %q", msg)
	}
	msg = run(t, 20*time.Millisecond, func() error { return errors.New("port closed") })
	if !strings.HasSuffix(msg, "not within 20ms: port closed") {
		t.Errorf("never nil: message %q, want the last error", msg)
	}
}
