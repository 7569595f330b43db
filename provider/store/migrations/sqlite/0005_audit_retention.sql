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

-- Rotating a refresh token deactivates the family's access tokens
-- (DeactivateOAuthByRequestID). A family gains an access and a refresh row
-- at every refresh and keeps them until they expire, so through oauth_request
-- that update read every row the family ever had: a session refreshed every
-- five minutes for a month would read thousands per refresh. Only the active
-- rows are wanted, and there are one or two.
CREATE INDEX oauth_request_active ON oauth(request_id, kind) WHERE active = 1;
