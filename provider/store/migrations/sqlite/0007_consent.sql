-- Consent (issue 12): what an officer allowed each relying party, and the
-- decision taken on a parked authorization request. Keep in step with
-- ../postgres/0007_consent.sql: same tables and columns.

-- An officer's remembered decision to let a relying party have the scopes
-- and claims it asked for (each a space-separated, sorted list). It stands
-- until the client asks for more or the officer withdraws it on the
-- account page.
CREATE TABLE consents (
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    claims     TEXT NOT NULL,
    granted_at BIGINT,
    PRIMARY KEY (user_id, client_id)
);

-- The officer's answer on the consent page to this parked request:
-- '' (none yet), 'granted' or 'declined', by whom and when. The provider
-- reads it when the request resumes.
ALTER TABLE auth_requests ADD COLUMN decision TEXT NOT NULL DEFAULT '';
ALTER TABLE auth_requests ADD COLUMN decided_by TEXT NOT NULL DEFAULT '';
ALTER TABLE auth_requests ADD COLUMN decided_at BIGINT;
