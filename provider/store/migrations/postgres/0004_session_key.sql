-- A stable key for every SSO session, PostgreSQL flavour. Keep in step with
-- ../sqlite/0004_session_key.sql.

-- The cookie's id, and so id_hash, changes at every sign-in step (session
-- fixation: after the password, the second factor, a confirmation on the
-- account page, a passkey ceremony, prompt=login); sid never does. The codes
-- and tokens issued in the session (oauth.session_id), the relying parties to
-- tell when it ends (session_clients.session_ref and .sid) and the sid claim
-- of its ID and logout tokens are all this key, so rotating the cookie's id
-- detaches nothing. A session from before this migration keeps its current
-- id_hash as its key: what is bound to it already carries that value.
ALTER TABLE sessions ADD COLUMN sid TEXT NOT NULL DEFAULT '';
UPDATE sessions SET sid = id_hash;
CREATE UNIQUE INDEX sessions_sid ON sessions(sid);
