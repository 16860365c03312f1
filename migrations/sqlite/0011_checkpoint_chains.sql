-- 0011: an agent's checkpoints are found from its head, along a chain of row ids, not through an index.
-- Why: the `checkpoints_by_agent` index cost every commit an index insert and, with retention, an index delete: about
-- a quarter of the writer's time per checkpoint (a replay of the writer's statements in C, 1,000 agents, 200-byte
-- states, batches of 300: 4.2 µs per commit with the index, 3.1 µs without). Now the head records the row id of the
-- agent's latest checkpoint (`last_id`), each checkpoint the row id of the one before it (`prev`), and retention
-- deletes by row id. Rows still follow time, so pages fill densely.
-- The index was also the second record that caught a stale head. Its place is taken by `runs.head_sum`, the sum of
-- the run's heads' sequences, written in the same transaction as the heads (once per transaction, not per commit):
-- a head page that goes back to an older version makes the sum disagree, and a resume or a listing refuses.
ALTER TABLE checkpoints ADD COLUMN prev INTEGER;                        -- NULL: nothing kept before it when written
ALTER TABLE checkpoint_heads ADD COLUMN last_id INTEGER NOT NULL DEFAULT 0;   -- checkpoints.id of last_seq
ALTER TABLE runs ADD COLUMN head_sum INTEGER NOT NULL DEFAULT 0;
UPDATE checkpoints SET prev = (
    SELECT p.id FROM checkpoints p WHERE p.agent_id = checkpoints.agent_id AND p.seq < checkpoints.seq
    AND p.id < checkpoints.id ORDER BY p.seq DESC LIMIT 1
);
UPDATE checkpoint_heads SET last_id = coalesce(
    (SELECT c.id FROM checkpoints c WHERE c.agent_id = checkpoint_heads.agent_id AND c.seq = checkpoint_heads.last_seq), 0
);
UPDATE runs SET head_sum = coalesce(
    (SELECT sum(h.last_seq) FROM agents a JOIN checkpoint_heads h ON h.agent_id = a.id WHERE a.run_id = runs.id), 0
);
DROP INDEX checkpoints_by_agent;
