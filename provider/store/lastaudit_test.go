package store_test

import (
	"testing"

	"github.com/lanyard-idp/lanyard/provider/store"
)

// TestLastAuditID: 0 on an empty trail, then the id of the newest event, so a
// tailing reader that starts there sees exactly the events appended after.
func TestLastAuditID(t *testing.T) {
	s := openSQLite(t)
	ctx := t.Context()
	if id, err := s.LastAuditID(ctx); err != nil || id != 0 {
		t.Fatalf("empty trail: %d, %v", id, err)
	}
	var last store.AuditEvent
	for _, name := range []store.Event{"a", "b", "c"} {
		last = store.AuditEvent{Event: name}
		if err := s.AppendAudit(ctx, &last); err != nil {
			t.Fatal(err)
		}
	}
	id, err := s.LastAuditID(ctx)
	if err != nil || id != last.ID {
		t.Fatalf("LastAuditID = %d, %v; want %d", id, err, last.ID)
	}
	next := store.AuditEvent{Event: "d"}
	if err := s.AppendAudit(ctx, &next); err != nil {
		t.Fatal(err)
	}
	after, err := s.Audit(ctx, store.AuditFilter{AfterID: id})
	if err != nil || len(after) != 1 || after[0].Event != "d" {
		t.Fatalf("events after %d: %+v, %v", id, after, err)
	}
}
