//go:build linux

package main

import (
	"os/exec"
	"syscall"
)

// dieWithTest makes the kernel kill a node when the test process dies (a
// timeout, ^C), so no `lanyard serve` outlives its test.
func dieWithTest(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
