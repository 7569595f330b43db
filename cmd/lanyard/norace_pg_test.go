//go:build !race

package main

// raceBuild: see race_pg_test.go.
const raceBuild = false
