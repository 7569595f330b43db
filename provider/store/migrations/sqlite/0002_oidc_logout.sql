-- Profile names and logout propagation, SQLite flavour. Keep in step with
-- ../postgres/0002_oidc_logout.sql.

-- OIDC Core §5.1 given_name and family_name; '' when Lanyard does not know
-- them (the full name alone is ambiguous).
ALTER TABLE users ADD COLUMN given_name TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN family_name TEXT NOT NULL DEFAULT '';

-- Which relying party received tokens in which SSO session. session_ref is
-- the session's current SessionRef (it follows RotateSession); sid is the
-- value the client was given in its ID token (the ref at that time), which
-- is what its logout token must carry. A row leaves this table only into
-- logout_outbox, in the transaction that ends the session.
CREATE TABLE session_clients (
    session_ref TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    sid         TEXT NOT NULL,
    subject     TEXT NOT NULL,
    created_at  BIGINT,
    PRIMARY KEY (session_ref, client_id, sid)
);
CREATE INDEX session_clients_subject ON session_clients(subject);

-- Back-channel logout tokens still to deliver (OpenID Connect Back-Channel
-- Logout 1.0). A node claims a row by setting claim and pushing
-- next_attempt_at one lease ahead; a node that dies mid-delivery leaves the
-- row to be claimed again when the lease runs out.
CREATE TABLE logout_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    sid             TEXT NOT NULL,
    reason          TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    attempts        INTEGER NOT NULL,
    claim           TEXT NOT NULL,
    last_error      TEXT NOT NULL
);
CREATE INDEX logout_outbox_due ON logout_outbox(next_attempt_at);
