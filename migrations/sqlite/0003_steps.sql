-- 0003: durable steps — results of external calls made inside an agent's unit of work.
-- Why: `context.step(name)` records the result of, say, an HTTP call as soon as it completes, so that when the
-- unit is handled again after a crash the recorded result is replayed instead of calling the service again. A
-- step's key names its unit (a durable message, or the checkpoint the unit started from), the step's name and its
-- occurrence; the commit that finishes the unit deletes its steps in the same transaction.
CREATE TABLE steps (
    agent_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    result BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (agent_id, key)
) STRICT, WITHOUT ROWID;
