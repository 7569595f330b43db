-- The audit trail's retention (lanyard audit export / prune): events older
-- than the retention are archived to a file and removed; the trail then
-- starts after the anchor, the last removed event, whose hash the first
-- remaining event chains to. One row at most.
CREATE TABLE audit_anchor (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    through_id BIGINT NOT NULL,
    hash       TEXT NOT NULL,
    pruned_at  BIGINT NOT NULL,
    events     BIGINT NOT NULL
);

-- `lanyard audit --since`, export and prune find the events of a period
-- without reading the whole trail.
CREATE INDEX audit_at ON audit(at);
