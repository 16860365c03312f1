-- 0002: a snapshot of each run's live supervision tree.
-- Why: `troupe tree` runs in another process than the run, and only the live process knows the tree's shape,
-- each child's status, incarnation and mailbox depth. The driving process writes the snapshot (JSON) every
-- second and when the run ends; the CLI joins it with the agents' rows (epoch, last checkpoint, last error).
ALTER TABLE runs ADD COLUMN tree TEXT;
ALTER TABLE runs ADD COLUMN tree_at INTEGER;
