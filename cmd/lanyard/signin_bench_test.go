package main

// Sign-ins at the hash's limit: returning officers (enrolled, documents
// accepted) sign in — username, password, authenticator-app code — and the
// relying party redeems the code for tokens, 8, 16 and 32 officers at once,
// on both backends. Each sign-in computes exactly one argon2id hash (the
// password), so the ceiling is the machine's argon2id rate at Lanyard's
// parameters, which the benchmark measures first on the same cores:
//
//	go test -run '^$' -bench SignIn -benchtime 10s ./cmd/lanyard/
//
// reports signins/s, argon2id/s and signins/s as a percentage of argon2id/s.
// With LANYARD_TEST_POSTGRES_URL set the PostgreSQL variant runs too. With
// LANYARD_BENCH_SQLITE=/path/lanyard.db or LANYARD_BENCH_POSTGRES=postgres://…
// (made by `lanyard fixture`, with its LANYARD_ENCRYPTION_KEY exported) the
// officers are the fixture's, in a full database. With
// LANYARD_BENCH_JOURNEY_ONLY=1 the officers' passwords are hashed at
// argon2id's smallest parameters, and ms-cpu/op is what the rest of a
// sign-in costs (use -benchtime 2000x: each officer's code is good once).

import (
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/net/html"

	"github.com/lanyard-idp/lanyard/flows"
	"github.com/lanyard-idp/lanyard/flows/otp"
	"github.com/lanyard-idp/lanyard/flows/password"
	"github.com/lanyard-idp/lanyard/provider/store"
)

func BenchmarkSignInSQLite(b *testing.B) {
	if u := os.Getenv("LANYARD_BENCH_SQLITE"); u != "" {
		benchSignIn(b, fullDBEnv("sqlite://"+u))
		return
	}
	benchSignIn(b, func(string) string { return "" })
}

func BenchmarkSignInPostgres(b *testing.B) {
	if u := os.Getenv("LANYARD_BENCH_POSTGRES"); u != "" {
		benchSignIn(b, fullDBEnv(u))
		return
	}
	benchSignIn(b, postgresBenchEnv(b))
}

// fullDBEnv is the environment of a server on a fixture's database.
func fullDBEnv(dbURL string) func(string) string {
	return func(k string) string {
		switch k {
		case "LANYARD_DATABASE_URL":
			return dbURL
		case "LANYARD_ENCRYPTION_KEY":
			return os.Getenv(k)
		}
		return ""
	}
}

func benchSignIn(b *testing.B, getenv func(string) string) {
	if getenv("LANYARD_DATABASE_URL") != "" && getenv("LANYARD_ENCRYPTION_KEY") == "" {
		b.Fatal("a fixture's database needs the LANYARD_ENCRYPTION_KEY it was made with")
	}
	srv := startBenchServer(b, getenv)
	officers := fixtureOfficers(b, srv, 3000)

	rp := srv.stagingRP("openid", "email", "profile")
	// Each sign-in takes the next officer: an authenticator-app code is good
	// once, so no officer signs in twice within its 30 seconds.
	next := atomic.Int64{}
	next.Store(rand.Int64N(int64(officers)))
	secret := fixtureTOTPSecret()
	for _, n := range []int{8, 16, 32} {
		b.Run(fmt.Sprintf("officers=%d", n), func(b *testing.B) {
			// Measured right before, on the same cores under the same
			// conditions: the ceiling the sign-ins are compared with.
			rate := argon2Rate(2 * time.Second)
			perHash := argon2CPU(8)
			var failed atomic.Pointer[error]
			busy := busyAnswers.Load()
			cpu0 := processCPU()
			b.SetParallelism(max(1, n/runtime.GOMAXPROCS(0)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := int(next.Add(1)%int64(officers)) + 1
					if err := benchJourney(srv.issuer, rp, returningPages(store.FixtureUsername(i), secret)); err != nil {
						failed.CompareAndSwap(nil, &err)
						return
					}
				}
			})
			b.StopTimer()
			cpu := processCPU() - cpu0
			if err := failed.Load(); err != nil {
				b.Fatal(*err)
			}
			per := float64(b.N) / b.Elapsed().Seconds()
			// The same ratio in CPU time, which a shared machine does not
			// blur: the hashes' share of all the CPU the process spent on
			// the sign-ins (server and the benchmark's own clients).
			b.ReportMetric(100*float64(b.N)*perHash.Seconds()/cpu.Seconds(), "%argon2id-cpu")
			b.ReportMetric(float64(runtime.GOMAXPROCS(0))/perHash.Seconds(), "argon2id/s-cpu")
			b.ReportMetric(per, "signins/s")
			b.ReportMetric(rate, "argon2id/s")
			b.ReportMetric(100*per/rate, "%argon2id")
			b.ReportMetric(per/float64(runtime.GOMAXPROCS(0)), "signins/s/core")
			b.ReportMetric(float64(busyAnswers.Load()-busy)/float64(b.N), "busy/op")
			// All a sign-in costs the process (server and clients), and the
			// hash's part of it.
			b.ReportMetric(cpu.Seconds()*1000/float64(b.N), "ms-cpu/op")
			b.ReportMetric(perHash.Seconds()*1000, "ms-cpu/argon2id")
		})
	}
}

// returningPages answers the pages of an enrolled officer's sign-in.
func returningPages(username string, secret []byte) func(step string, doc *html.Node, form url.Values) error {
	return func(step string, doc *html.Node, form url.Values) error {
		switch step {
		case "identify":
			form.Set("username", username)
		case "password":
			form.Set("username", username)
			form.Set("password", fixturePassword)
		case "mfa-challenge":
			form.Set("code", otp.Code(secret, time.Now()))
		default:
			return fmt.Errorf("a returning officer met the step %q: %.300s", step, text(doc))
		}
		return nil
	}
}

// fixtureOfficers makes sure the server's database has fixture officers and
// returns how many: the fixture's own in a full database, else n made now
// (bulk, like `lanyard fixture`).
func fixtureOfficers(b *testing.B, srv *benchServer, n int) int {
	b.Helper()
	ctx := context.Background()
	var have int
	if err := srv.d.store.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE id LIKE 'fx-%'`).Scan(&have); err != nil {
		b.Fatal(err)
	}
	if have > 0 {
		return have
	}
	hash, err := password.Hash(fixturePassword)
	if err != nil {
		b.Fatal(err)
	}
	if os.Getenv("LANYARD_BENCH_JOURNEY_ONLY") != "" {
		// The stored hash names its own parameters: the smallest argon2id
		// leaves what the rest of the journey costs (ms-cpu/op).
		hash = journeyOnlyHash(fixturePassword)
	}
	docs := map[string]string{}
	for _, d := range srv.d.cfg.Documents {
		docs[d.ID] = d.Version
	}
	err = srv.d.store.GenerateFixture(ctx, store.Fixture{Officers: n, PasswordHash: hash,
		TOTPSecret: flows.SealTOTPSecret(srv.d.box, fixtureTOTPSecret()), Documents: docs})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// journeyOnlyHash is pw hashed with argon2id at its smallest parameters
// (8 KiB, one pass), in the stored format password.Verify reads.
func journeyOnlyHash(pw string) string {
	salt := []byte("journey-only-salt")
	key := argon2.IDKey([]byte(pw), salt, 1, 8, 1, 32)
	e := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=8,t=1,p=1$%s$%s", argon2.Version, e.EncodeToString(salt), e.EncodeToString(key))
}

// argon2CPU is the CPU time of one argon2id hash at Lanyard's parameters:
// the process's CPU time over n hashes in a row, while the server idles
// (argon2 runs on goroutines of its own, so a thread's time would miss it).
func argon2CPU(n int) time.Duration {
	salt := make([]byte, 16)
	start := processCPU()
	for range n {
		argon2.IDKey([]byte(fixturePassword), salt, 2, 19*1024, 1, 32)
	}
	return (processCPU() - start) / time.Duration(n)
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// argon2Rate is how many argon2id hashes at Lanyard's parameters (19 MiB,
// 2 passes, 1 lane) the machine computes per second on GOMAXPROCS cores.
func argon2Rate(d time.Duration) float64 {
	var done atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	salt := make([]byte, 16)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < d {
				argon2.IDKey([]byte(fixturePassword), salt, 2, 19*1024, 1, 32)
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(done.Load()) / time.Since(start).Seconds()
}
