//go:build pprof

package main

// Built only with -tags pprof (README, Performance: how the profiles were
// taken): the Go profiler on LANYARD_PPROF_LISTEN (a loopback address), for
// profiling a real `lanyard serve` under load. Release builds do not contain
// it.

import (
	"log"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof on http.DefaultServeMux
	"os"
	"strings"
)

func init() {
	addr := os.Getenv("LANYARD_PPROF_LISTEN")
	if addr == "" {
		return
	}
	if !strings.HasPrefix(addr, "127.0.0.1:") && !strings.HasPrefix(addr, "localhost:") {
		log.Fatalf("LANYARD_PPROF_LISTEN=%s: only a loopback address", addr)
	}
	go func() { log.Println(http.ListenAndServe(addr, nil)) }()
}
