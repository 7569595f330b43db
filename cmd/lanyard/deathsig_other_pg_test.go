//go:build !linux

package main

import "os/exec"

// dieWithTest: see deathsig_linux_pg_test.go; elsewhere the test's cleanup
// stops the nodes.
func dieWithTest(*exec.Cmd) {}
