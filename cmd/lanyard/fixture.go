package main

// lanyard fixture: fill a development database with a year of data, for
// measuring Lanyard with a full database (README, Performance).

import (
	"context"
	"encoding/base32"
	"fmt"
	"time"

	"github.com/lanyard-idp/lanyard/flows"
	"github.com/lanyard-idp/lanyard/flows/password"
	"github.com/lanyard-idp/lanyard/provider/store"
)

// What every fixture officer knows: the benchmarks sign them in with it.
const (
	fixturePassword   = "Fixture-officer-password-2026"
	fixtureTOTPBase32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ" // 20 bytes
)

func fixtureTOTPSecret() []byte {
	b, err := base32.StdEncoding.DecodeString(fixtureTOTPBase32)
	if err != nil {
		panic(err)
	}
	return b
}

func cmdFixture(ctx context.Context, args []string, e env) error {
	cmd := newCommand("fixture --dev [--officers N] [--tokens N] [--audit N]", e)
	var officers, tokens, audit int
	cmd.fs.IntVar(&officers, "officers", 100_000, "officers who finished their first sign-in (password, authenticator app, documents)")
	cmd.fs.IntVar(&tokens, "tokens", 1_000_000, "live token rows (access and refresh token families)")
	cmd.fs.IntVar(&audit, "audit", 10_000_000, "audit events, spread over the past year")
	if _, err := cmd.parse(args, e, 0, 0); err != nil {
		return err
	}
	if officers < 0 || tokens < 0 || audit < 0 {
		return usagef("--officers, --tokens and --audit must be 0 or more")
	}
	cfg, err := cmd.c.load(e)
	if err != nil {
		return err
	}
	if !cfg.Dev {
		return usagef("fixture fills the database with made-up officers: development only (--dev; LANYARD_DATABASE_URL may point it at PostgreSQL)")
	}
	d, err := open(ctx, cfg, e)
	if err != nil {
		return err
	}
	defer d.Close()
	hash, err := password.Hash(fixturePassword)
	if err != nil {
		return err
	}
	docs := map[string]string{}
	for _, doc := range cfg.Documents {
		docs[doc.ID] = doc.Version
	}
	start := time.Now()
	tableStart := start
	f := store.Fixture{
		Officers: officers, Tokens: tokens, AuditEvents: audit,
		PasswordHash: hash, TOTPSecret: flows.SealTOTPSecret(d.box, fixtureTOTPSecret()), Documents: docs,
		Now: e.now(),
		Progress: func(table string, done, total int) {
			switch {
			case done == 0:
				tableStart = time.Now()
			case done == total:
				fmt.Fprintf(e.stderr, "%-12s %10d rows in %v\n", table, total, time.Since(tableStart).Round(time.Millisecond))
			}
		},
	}
	if err := d.store.GenerateFixture(ctx, f); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "fixture written in %v (%s): %d officers, %d token rows, %d audit events\n"+
		"officers %s … %s, password %q, authenticator secret %s\n",
		time.Since(start).Round(time.Second), d.store.Dialect(), officers, tokens, audit,
		store.FixtureUsername(1), store.FixtureUsername(max(officers, 1)), fixturePassword, fixtureTOTPBase32)
	return nil
}
