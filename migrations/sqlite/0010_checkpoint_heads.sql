-- 0010: each agent's last committed checkpoint sequence (0006's `last_seq`) in a narrow table of its own.
-- Why: every checkpoint's commit updates it. In the agent's row, SQLite rewrote the whole row (run, name, Swift type,
-- status: about 100 bytes) on each commit, and a batch of commits dirtied one page per 40 or so agents; here a row
-- is a few bytes and a page holds hundreds. Measured on a replay of the writer's statements (1,000 agents, batches
-- of 150): 5.1 µs per commit before, 4.6 after. An agent without a row here has committed no checkpoint.
CREATE TABLE checkpoint_heads (
    agent_id INTEGER PRIMARY KEY,         -- agents.id
    last_seq INTEGER NOT NULL
) STRICT;
INSERT INTO checkpoint_heads (agent_id, last_seq) SELECT id, last_seq FROM agents WHERE last_seq <> 0;
ALTER TABLE agents DROP COLUMN last_seq;
