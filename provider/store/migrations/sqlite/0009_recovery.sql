-- Self-service recovery (sqlite). Keep in step with ../postgres/0009_recovery.sql.

-- One row per "Forgot your password?" link. token_hash is the hex SHA-256
-- of the emailed token (never the token). status: sent (emailed), claimed
-- (opened, and bound to the browser whose session key is claimed_sid), used
-- (the password was reset), void (a newer link replaced it, it was opened in
-- a second browser, or the account changed under it; void_reason says
-- which). An account has at most one live link (sent or claimed): the
-- partial unique index decides between racing requests.
CREATE TABLE password_resets (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL UNIQUE,
    status      TEXT NOT NULL,
    client_addr TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    claimed_sid TEXT NOT NULL,
    claimed_at  BIGINT,
    done_at     BIGINT,
    void_reason TEXT NOT NULL
);
CREATE UNIQUE INDEX password_resets_live ON password_resets(user_id) WHERE status IN ('sent', 'claimed');
CREATE INDEX password_resets_expires ON password_resets(expires_at);

-- An account request is for a new account, or (kind 'invitation') for a
-- fresh onboarding email of an invitation that was lost or has expired.
ALTER TABLE account_requests ADD COLUMN kind TEXT NOT NULL DEFAULT 'account';
