-- The audit chain becomes keyed: from this version every event's hash is an
-- HMAC under a key derived from the key-encryption key. Nothing changes in
-- the schema. In this migration's transaction the store's hook
-- (keyAuditChain, provider/store/audit.go) appends the audit.chain.keyed
-- event that vouches for the unkeyed events older versions wrote.
SELECT 1;
