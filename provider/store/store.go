// Package store is Lanyard's persistence: one SQL implementation on
// database/sql with a small dialect table for SQLite (modernc.org/sqlite, the
// embedded default) and PostgreSQL (pgx), embedded forward-only migrations, and
// domain-shaped methods (api.go lists them). Every method joins the
// transaction carried in the context, so fosite's code exchange and refresh
// rotation are atomic.
//
// No HTTP, no fosite and no page logic here: provider adapts fosite to these
// methods, flows builds the journey on them.
package store

import "database/sql"

// Store is the database of one deployment.
type Store struct {
	db *sql.DB
}
