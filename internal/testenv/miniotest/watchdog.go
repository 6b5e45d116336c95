package miniotest

import (
	"os"
	"os/exec"
	"syscall"
)

// watchdog is a process that removes a container once the test binary is
// gone, however it ended. It waits for end of file on a pipe whose only
// writer is this process: the kernel closes it when the process exits,
// even on SIGKILL. It runs in its own session, so a ^C to `go test` does
// not kill it before it has done its work, and its output goes nowhere, so
// `go test` does not wait for it.
type watchdog struct {
	cmd *exec.Cmd
	w   *os.File // held open while the container should live
}

func startWatchdog(container string) (*watchdog, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("sh", "-c", `read _; exec docker rm -f -v "$0" >/dev/null 2>&1`, container)
	cmd.Stdin = r
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	r.Close()
	return &watchdog{cmd: cmd, w: w}, nil
}

// release lets the watchdog remove the container now (a no-op when it is
// already gone) and reaps it.
func (wd *watchdog) release() {
	if wd == nil {
		return
	}
	wd.w.Close()
	wd.cmd.Wait()
}
