package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// RunFunc is a program: it runs until ctx ends or its work is done. getenv
// supplies every flag's environment fallback, so tests run programs
// without touching the process environment.
type RunFunc func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error

// Main runs run with the process's arguments, environment and output, and
// a context cancelled by SIGINT or SIGTERM, then exits: 0 on success (and
// after -h or -flags-json), 2 for a usage error (already explained on
// stderr by the flag set), 1 for any other error, printed once as
// "name: error".
func Main(name string, run RunFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(Exit(name, err, os.Stderr))
}

// Exit prints err for program name on stderr (unless it was printed
// already) and returns the process's exit status.
func Exit(name string, err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp), errors.Is(err, ErrDone):
		return 0
	case errors.Is(err, ErrUsage):
		var ue *usageError
		if errors.As(err, &ue) && ue.msg != "" {
			fmt.Fprintf(stderr, "%s: %s\n", name, ue.msg)
		}
		return 2
	}
	fmt.Fprintf(stderr, "%s: %v\n", name, err)
	return 1
}

// ErrUsage is wrapped by the errors of a wrong command line: the program
// exits with status 2.
var ErrUsage = errors.New("usage error")

// ErrDone is returned by Parse after -flags-json printed the schema: the
// program has nothing left to do and exits with status 0.
var ErrDone = errors.New("done")

type usageError struct{ msg string }

func (e *usageError) Error() string {
	if e.msg == "" {
		return ErrUsage.Error()
	}
	return e.msg
}
func (e *usageError) Unwrap() error { return ErrUsage }

// Usagef returns a usage error (exit status 2) that Main prints.
func Usagef(format string, a ...any) error {
	return &usageError{msg: fmt.Sprintf(format, a...)}
}

// usageShown is a usage error already explained on stderr.
var usageShown = &usageError{}
