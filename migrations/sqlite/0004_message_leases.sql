-- 0004: durable message ids are never reused, and "pending after a resume" is decided per row.
-- Why: `messages.id INTEGER PRIMARY KEY` let SQLite hand out an id again once the largest row was deleted (or the
-- table drained), so a later message could share its id with an earlier one: durable steps keyed by message id
-- replayed another message's result, and a message stored after a resume could fall below the resume's id
-- watermark and be handled twice. `AUTOINCREMENT` never reuses an id. `lease` records the run's lease token under
-- which the message was accepted (0: by no live owner, e.g. a requeued dead letter): a claim adopts the agent's
-- messages accepted under an older lease by setting their lease to the current one, so each is returned once per
-- owner, whatever its id. Existing rows were accepted by an earlier owner: they start at lease 0.
CREATE TABLE messages_v4 (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- delivery order; never reused
    run_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    sender TEXT,
    created_at INTEGER NOT NULL,
    payload BLOB NOT NULL,
    lease INTEGER NOT NULL DEFAULT 0      -- the run's lease token when it was accepted
) STRICT;
INSERT INTO messages_v4 (id, run_id, recipient, sender, created_at, payload, lease)
    SELECT id, run_id, recipient, sender, created_at, payload, 0 FROM messages;
DROP TABLE messages;
ALTER TABLE messages_v4 RENAME TO messages;
CREATE INDEX messages_by_recipient ON messages (run_id, recipient, lease, id);
