-- 0007: write transactions are numbered, and consumed durable messages are kept while a fork may need them.
-- Why: `troupe fork` took each agent's checkpoint as of the chosen one's time in milliseconds (commits in the same
-- millisecond, or made in another order, mixed) and carried no message that was in flight: a counter forked that way
-- counted 1,950 numbers twice. Each write transaction that touches a run takes the run's next `txn` (advanced by the
-- lease check it already makes); a checkpoint records the number of the transaction that wrote it, a message those
-- that sent and consumed it. A fork at a checkpoint is the state right after its transaction: each agent's latest
-- checkpoint numbered at or below it, and the messages sent at or below it and not consumed by then. A consumed
-- message is kept until no such cut can need it (it was consumed before its recipient's oldest kept checkpoint).
-- Rows written before this migration carry 0: earlier than every numbered transaction. Pending messages are found
-- through a partial index that consumed ones stay out of; consumed ones are deleted by id (the writer remembers which
-- it marked) or by a sweep when their run is attached again.
ALTER TABLE runs ADD COLUMN txn INTEGER NOT NULL DEFAULT 0;
ALTER TABLE checkpoints ADD COLUMN txn INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN sent_txn INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN consumed_txn INTEGER;  -- NULL while the message waits for its recipient
DROP INDEX messages_by_recipient;
CREATE INDEX messages_pending ON messages (run_id, recipient, lease, id) WHERE consumed_txn IS NULL;
