-- Account requests and the admin console (postgres). Keep in step with ../sqlite/0006_requests_console.sql.

-- One row per request on /request. token_hash is the hex SHA-256 of the
-- emailed verification token ('' once the mailbox is proved). A mailbox has
-- at most one open request (unverified or pending): the partial unique index
-- decides between racing submissions.
CREATE TABLE account_requests (
    id           TEXT PRIMARY KEY,
    email        TEXT NOT NULL,
    name         TEXT NOT NULL,
    organisation TEXT NOT NULL,
    reason       TEXT NOT NULL,
    status       TEXT NOT NULL,
    token_hash   TEXT NOT NULL,
    client_addr  TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    verified_at  BIGINT,
    decided_at   BIGINT,
    expires_at   BIGINT NOT NULL,
    decided_by   TEXT NOT NULL,
    deny_reason  TEXT NOT NULL
);
CREATE UNIQUE INDEX account_requests_open ON account_requests(email) WHERE status IN ('unverified', 'pending');
CREATE UNIQUE INDEX account_requests_token ON account_requests(token_hash) WHERE token_hash <> '';
CREATE INDEX account_requests_queue ON account_requests(status, created_at, id);
CREATE INDEX account_requests_expires ON account_requests(expires_at) WHERE status IN ('unverified', 'pending');

-- The console's officer search: every word of an officer's name and of the
-- address's local part, and the whole address, lower-cased without accents,
-- keyed by the username (which the rows follow when it changes). A prefix
-- search reads user_search_term in order; a search that matches many
-- officers walks users by username and probes the primary key. The store
-- keeps it in step with users (CreateUser, UpdateUser).
CREATE TABLE user_search (
    username TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE ON UPDATE CASCADE,
    term     TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (username, term)
);
CREATE INDEX user_search_term ON user_search(term, username);

-- The console's officer list by state, a page at a time in username order.
CREATE INDEX users_state ON users(state, username);

-- The locked accounts (few rows among many counters).
CREATE INDEX throttle_locked ON throttle(locked_until) WHERE locked_until IS NOT NULL;
