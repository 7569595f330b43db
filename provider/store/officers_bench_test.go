package store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lanyard-idp/lanyard/provider/store"
	"github.com/lanyard-idp/lanyard/provider/store/storetest"
)

// BenchmarkOfficers measures the admin console's officer list with a full
// deployment: a page of 50 by address, a page deep in the list, a search by
// family name, by given name, by both, by address, and the state filters —
// each an indexed query, so a page costs about the same at any size. The
// size is LANYARD_BENCH_OFFICERS (default 100,000); PostgreSQL runs when
// LANYARD_TEST_POSTGRES_URL is set.
//
//	go test -run '^$' -bench Officers -benchtime 200x ./provider/store/
func BenchmarkOfficers(b *testing.B) {
	n := 100_000
	if v := os.Getenv("LANYARD_BENCH_OFFICERS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1000 {
			b.Fatalf("LANYARD_BENCH_OFFICERS=%q: want a number of at least 1000", v)
		}
	}
	b.Run("SQLite", func(b *testing.B) {
		s, err := store.Open(b.Context(), filepath.Join(b.TempDir(), "lanyard.db"), store.OpenOptions{AuditKey: storetest.AuditKey})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		benchOfficers(b, s, n)
	})
	b.Run("PostgreSQL", func(b *testing.B) {
		base := os.Getenv("LANYARD_TEST_POSTGRES_URL")
		if base == "" {
			b.Skip("LANYARD_TEST_POSTGRES_URL is not set")
		}
		s, err := store.Open(b.Context(), freshSchema(b, base), store.OpenOptions{AuditKey: storetest.AuditKey})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		benchOfficers(b, s, n)
	})
}

var (
	givenNames = []string{"alice", "bob", "carol", "dan", "eve", "fay", "gil", "hal", "ivy", "jon", "kim", "lee", "mo", "ned", "ola",
		"pat", "quinn", "ray", "sam", "tess", "uma", "vic", "wes", "xan", "yan", "zoe", "ana", "ben", "cy", "dee", "eli", "fin",
		"gus", "hana", "ian", "jo", "kai", "liv", "max", "nia", "oz", "pia", "rex", "sue", "tom", "una", "val", "will", "yara", "zak"}
	familyNames = func() []string {
		base := []string{"martin", "smith", "jones", "garcia", "muller", "rossi", "dubois", "novak", "silva", "kowalski"}
		var out []string
		for _, f := range base {
			for i := range 20 {
				out = append(out, fmt.Sprintf("%s%c", f, 'a'+i))
			}
		}
		out[0] = "martin"
		return out
	}()
)

// seedOfficers writes n officers: 50 given names by 200 family names, a
// tenth invited (half of those expired), a few disabled.
func seedOfficers(b *testing.B, s *store.Store, n int, now time.Time) []string {
	b.Helper()
	const batch, workers = 1000, 4
	usernames := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for start := range next {
				err := s.InTx(context.Background(), func(ctx context.Context) error {
					for i := start; i < min(start+batch, n); i++ {
						g, f := givenNames[i%len(givenNames)], familyNames[(i/len(givenNames))%len(familyNames)]
						u := &store.User{ID: fmt.Sprintf("bench-%08d", i), Username: fmt.Sprintf("%s.%s.%d@agency.example", g, f, i),
							Name: g + " " + f, State: store.UserActive, PasswordHash: "$argon2id$bench", CreatedAt: now, LastSignInAt: now}
						u.Email = u.Username
						switch h := i * 7919 % 1000; {
						case h%10 == 3:
							u.State, u.PasswordInitial, u.InviteExpiresAt, u.LastSignInAt = store.UserInvited, true, now.Add(-time.Hour), time.Time{}
						case h%10 == 7:
							u.State, u.PasswordInitial, u.InviteExpiresAt, u.LastSignInAt = store.UserInvited, true, now.Add(time.Hour), time.Time{}
						case h%97 == 0:
							u.State = store.UserDisabled
						}
						if err := s.CreateUser(ctx, u); err != nil {
							return err
						}
						usernames[i] = u.Username
					}
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	start := time.Now()
	for i := 0; i < n; i += batch {
		select {
		case next <- i:
		case err := <-errs:
			b.Fatal(err)
		}
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	if s.Dialect() == store.DialectPostgres {
		// What autovacuum does after a bulk load: the planner's statistics
		// and the visibility map (index-only scans).
		for _, table := range []string{"users", "user_search"} {
			if _, err := s.DB().ExecContext(b.Context(), "VACUUM ANALYZE "+table); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Logf("%s: %d officers written in %s", s.Dialect(), n, time.Since(start).Round(time.Second))
	slices.Sort(usernames)
	return usernames
}

func benchOfficers(b *testing.B, s *store.Store, n int) {
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	all := seedOfficers(b, s, n, now)
	for _, q := range []struct {
		name  string
		query store.UserQuery
		min   int // at least this many on the page
	}{
		{"first page", store.UserQuery{}, 51},
		{"middle page", store.UserQuery{After: all[len(all)/2]}, 51},
		{"search family name", store.UserQuery{Search: "martin"}, 51},
		{"search given name", store.UserQuery{Search: "alice"}, 51},
		{"search given and family", store.UserQuery{Search: "alice martin"}, 1},
		{"search address", store.UserQuery{Search: all[n/3][:len(all[n/3])-8]}, 1},
		{"search no match", store.UserQuery{Search: "nobody"}, 0},
		{"invited", store.UserQuery{State: store.UserInvited}, 51},
		{"invitation expired", store.UserQuery{InviteExpiredAt: now}, 51},
		{"search family name, invited", store.UserQuery{Search: "smitha", State: store.UserInvited}, 20},
	} {
		q.query.Limit = 51
		b.Run(q.name, func(b *testing.B) {
			for b.Loop() {
				us, err := s.ListUsersPage(b.Context(), q.query)
				if err != nil {
					b.Fatal(err)
				}
				if len(us) < q.min {
					b.Fatalf("%d officers, want at least %d", len(us), q.min)
				}
			}
		})
	}
}
