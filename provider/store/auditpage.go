package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// AuditQuery selects a page of the audit trail, newest first (the console's
// audit page). Zero fields match everything.
type AuditQuery struct {
	UserID string
	// Username matches events about an address whatever its account (an
	// account request has none); used when UserID is empty.
	Username string
	Event    string // exact, or a prefix ending in "." ("admin.")
	Since    time.Time
	Until    time.Time // events before it
	BeforeID int64     // the id the previous page ended with
	Limit    int       // default and maximum 500
}

// AuditPage returns up to q.Limit events matching q, newest first.
func (s *Store) AuditPage(ctx context.Context, q AuditQuery) ([]AuditEvent, error) {
	if q.Limit <= 0 || q.Limit > 500 {
		q.Limit = 500
	}
	var where []string
	var args []any
	switch {
	case q.UserID != "":
		where, args = append(where, "user_id = ?"), append(args, q.UserID)
	case q.Username != "":
		where, args = append(where, "username = ?"), append(args, q.Username)
	}
	switch {
	case strings.HasSuffix(q.Event, "."):
		where, args = append(where, "substr(event, 1, ?) = ?"), append(args, int64(len(q.Event)), q.Event)
	case q.Event != "":
		where, args = append(where, "event = ?"), append(args, q.Event)
	}
	if !q.Since.IsZero() {
		where, args = append(where, "at >= ?"), append(args, q.Since.UnixMicro())
	}
	if !q.Until.IsZero() {
		where, args = append(where, "at < ?"), append(args, q.Until.UnixMicro())
	}
	if q.BeforeID > 0 {
		where, args = append(where, "id < ?"), append(args, q.BeforeID)
	}
	sqlText := `SELECT ` + auditCols + ` FROM audit`
	if len(where) > 0 {
		sqlText += " WHERE " + strings.Join(where, " AND ")
	}
	rows, err := s.query(ctx, rd, sqlText+" ORDER BY id DESC LIMIT ?", append(args, int64(q.Limit))...)
	if err != nil {
		return nil, fmt.Errorf("audit page: %w", err)
	}
	defer rows.Close()
	var out []AuditEvent
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return nil, fmt.Errorf("audit page: %w", s.mapErr(err))
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit page: %w", s.mapErr(err))
	}
	return out, nil
}
