-- 0003: the build that last drove each run.
-- Why: workers of different builds share one database during a rolling deployment, and a run's checkpoints are best
-- read by the build that wrote them. Each attach records the driving worker's build (`troupe worker --build`); a
-- worker claims a run of another build only when no live worker of the run's build remains, so runs follow their
-- build while it runs and move on once it is gone. NULL: no preference (submitted, or driven before this migration).
ALTER TABLE runs ADD COLUMN build text;
