-- 0009: each run's tree snapshot in a table of its own.
-- Why: the snapshot (JSON, one node per agent: megabytes for a run of many thousands) sat in the run's row, which
-- every transaction updates (heartbeat and transaction number), and SQLite rewrites a whole row on each update:
-- a run of 9,000 agents copied its snapshot on every group commit, and stopping it took seconds.
CREATE TABLE run_trees (
    run_id TEXT PRIMARY KEY,
    tree TEXT NOT NULL,
    tree_at INTEGER NOT NULL
) STRICT;
INSERT INTO run_trees (run_id, tree, tree_at) SELECT id, tree, tree_at FROM runs WHERE tree IS NOT NULL;
ALTER TABLE runs DROP COLUMN tree;
ALTER TABLE runs DROP COLUMN tree_at;
