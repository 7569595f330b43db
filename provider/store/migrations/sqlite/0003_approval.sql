-- The Lanyard approval app (issue 14). Keep in step with
-- ../postgres/0003_approval.sql: same tables, columns and indexes.

-- A phone paired with the approval app: the public half of its
-- device-bound key (DER SubjectPublicKeyInfo, ECDSA P-256) and, when the
-- browser gave one, its Web Push subscription ('' when none).
CREATE TABLE approval_devices (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    public_key    BLOB NOT NULL,
    push_endpoint TEXT NOT NULL,
    push_p256dh   TEXT NOT NULL,
    push_auth     TEXT NOT NULL,
    created_at    BIGINT,
    last_used_at  BIGINT
);
CREATE INDEX approval_devices_user ON approval_devices(user_id);

-- A request to the app: a pairing (its one-time link's token stored as a
-- hash, then the key the phone registered), or a sign-in or confirm-it-is-you
-- to approve. The number is what the signing-in browser shows; the
-- challenge what the app's signature covers.
CREATE TABLE approval_requests (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    state         TEXT NOT NULL,
    number        INTEGER NOT NULL,
    challenge     TEXT NOT NULL,
    token_hash    TEXT UNIQUE,
    public_key    BLOB,
    device_name   TEXT NOT NULL,
    push_endpoint TEXT NOT NULL,
    push_p256dh   TEXT NOT NULL,
    push_auth     TEXT NOT NULL,
    device_id     TEXT NOT NULL,
    application   TEXT NOT NULL,
    browser       TEXT NOT NULL,
    client_addr   TEXT NOT NULL,
    wrong_numbers INTEGER NOT NULL,
    reason        TEXT NOT NULL,
    reported      INTEGER NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    claimed_at    BIGINT,
    decided_at    BIGINT
);
CREATE INDEX approval_requests_user ON approval_requests(user_id, created_at);
CREATE INDEX approval_requests_expires ON approval_requests(expires_at);
-- At most one request waits for an answer per account (pairings aside).
CREATE UNIQUE INDEX approval_requests_one_pending ON approval_requests(user_id)
    WHERE state = 'pending' AND kind <> 'pairing';
