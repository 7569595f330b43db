-- Lanyard schema, PostgreSQL flavour. Keep in step with ../sqlite/0001_init.sql:
-- same tables, columns and indexes; only the types differ. Times are unix
-- microseconds UTC (NULL = not set); booleans are INTEGER 0/1; lists are JSON.

CREATE TABLE users (
    id               TEXT PRIMARY KEY,
    username         TEXT NOT NULL UNIQUE,
    email            TEXT NOT NULL,
    name             TEXT NOT NULL,
    state            TEXT NOT NULL,
    password_hash    TEXT NOT NULL,
    password_initial INTEGER NOT NULL,
    invite_expires_at BIGINT,
    created_at       BIGINT,
    updated_at       BIGINT,
    last_sign_in_at  BIGINT,
    webauthn_handle  BYTEA UNIQUE
);

CREATE TABLE totp (
    user_id    TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    secret     BYTEA NOT NULL,
    confirmed  INTEGER NOT NULL,
    last_step  BIGINT NOT NULL,
    created_at BIGINT
);

CREATE TABLE recovery_codes (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    hash    TEXT NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (user_id, hash)
);

CREATE TABLE webauthn_credentials (
    id           BYTEA PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    public_key   BYTEA NOT NULL,
    sign_count   BIGINT NOT NULL,
    aaguid       BYTEA,
    transports   TEXT NOT NULL,
    data         BYTEA,
    created_at   BIGINT,
    last_used_at BIGINT
);
CREATE INDEX webauthn_credentials_user ON webauthn_credentials(user_id);

CREATE TABLE acceptances (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    document    TEXT NOT NULL,
    version     TEXT NOT NULL,
    accepted_at BIGINT,
    client_addr TEXT NOT NULL
);
CREATE INDEX acceptances_user ON acceptances(user_id, document);

-- id_hash is the hex SHA-256 of the cookie's session id (SessionRef): a
-- database reader cannot hijack a session.
CREATE TABLE sessions (
    id_hash      TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL,
    state        TEXT NOT NULL,
    auth_time    BIGINT,
    amr          TEXT NOT NULL,
    acr          TEXT NOT NULL,
    data         BYTEA,
    user_agent   TEXT NOT NULL,
    client_addr  TEXT NOT NULL,
    created_at   BIGINT,
    last_seen_at BIGINT,
    expires_at   BIGINT
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_expires ON sessions(expires_at);

CREATE TABLE throttle (
    key_name     TEXT PRIMARY KEY,
    failures     INTEGER NOT NULL,
    window_start BIGINT,
    locked_until BIGINT,
    locks        INTEGER NOT NULL
);

-- Append-only: the store has no method that updates or deletes a row.
CREATE TABLE audit (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          BIGINT NOT NULL,
    event       TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    username    TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    client_addr TEXT NOT NULL,
    user_agent  TEXT NOT NULL,
    detail      BYTEA,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_user ON audit(user_id, id);
CREATE INDEX audit_event ON audit(event, id);

CREATE TABLE signing_keys (
    kid        TEXT PRIMARY KEY,
    alg        TEXT NOT NULL,
    private    BYTEA NOT NULL,
    created_at BIGINT,
    retired_at BIGINT
);

CREATE TABLE secrets (
    name       TEXT PRIMARY KEY,
    value      BYTEA NOT NULL
);

-- Every fosite storage kind in one table. signature_hash and
-- access_signature_hash are hex SHA-256 of what fosite hands the store.
CREATE TABLE oauth (
    kind                  TEXT NOT NULL,
    signature_hash        TEXT NOT NULL,
    request_id            TEXT NOT NULL,
    client_id             TEXT NOT NULL,
    subject               TEXT NOT NULL,
    session_id            TEXT NOT NULL,
    active                INTEGER NOT NULL,
    access_signature_hash TEXT NOT NULL,
    requested_at          BIGINT,
    expires_at            BIGINT,
    data                  BYTEA,
    PRIMARY KEY (kind, signature_hash)
);
CREATE INDEX oauth_request ON oauth(request_id);
-- Partial: client_credentials tokens (no subject, no session) skip these two
-- indexes, which keeps the token endpoint's INSERT cheap. Queries using them
-- repeat the predicate so the planner may.
CREATE INDEX oauth_subject ON oauth(subject) WHERE subject <> '';
CREATE INDEX oauth_session ON oauth(session_id) WHERE session_id <> '';
CREATE INDEX oauth_expires ON oauth(expires_at);

CREATE TABLE auth_requests (
    id           TEXT PRIMARY KEY,
    client_id    TEXT NOT NULL,
    query_string TEXT NOT NULL,
    created_at   BIGINT,
    expires_at   BIGINT
);
CREATE INDEX auth_requests_expires ON auth_requests(expires_at);
