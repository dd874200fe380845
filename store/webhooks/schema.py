"""The webhook tables, created with the store's own schema when FlagDB opens the file
(see store/webhooks/db.py for what they hold and their bounds)."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS webhooks (
    id TEXT PRIMARY KEY, url TEXT NOT NULL, secret TEXT NOT NULL,
    environments TEXT, kinds TEXT, enabled INTEGER NOT NULL,
    cursor INTEGER NOT NULL, revision INTEGER NOT NULL,
    state TEXT NOT NULL, failing_since_ms INTEGER, last_error TEXT,
    created_ms INTEGER NOT NULL, created_by TEXT NOT NULL, updated_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    webhook_id TEXT NOT NULL, seq INTEGER NOT NULL, delivery_id TEXT NOT NULL,
    status TEXT NOT NULL, attempts INTEGER NOT NULL, http_status INTEGER, error TEXT,
    last_attempt_ms INTEGER NOT NULL, next_retry_ms INTEGER,
    PRIMARY KEY (webhook_id, seq)) WITHOUT ROWID;
"""
