//go:build race

package main

// raceBuild: the tests run with the race detector, so the binary the
// multi-node test starts is built with it too.
const raceBuild = true
