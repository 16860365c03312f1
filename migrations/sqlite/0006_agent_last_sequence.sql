-- 0006: each agent's row records the sequence of the checkpoint it committed last.
-- Why: with a damaged `checkpoints_by_agent` index or table page, a resume loaded an older checkpoint without any
-- error, and `troupe checkpoints --show last` printed a stale state. Every read that decides something now checks
-- the latest checkpoint it finds against this column, and refuses on a mismatch. The commit that writes a
-- checkpoint sets it in the same transaction.
ALTER TABLE agents ADD COLUMN last_seq INTEGER NOT NULL DEFAULT 0;
UPDATE agents SET last_seq = coalesce((SELECT max(seq) FROM checkpoints c WHERE c.agent_id = agents.id), 0);
