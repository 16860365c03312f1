-- 0004: when the database server began serving after each of its starts, as first seen by a Troupe session.
-- Why: a server restart frees every worker's liveness lock at once, and until each live worker has reconnected (its
-- next heartbeat), a free lock does not mean a dead worker. PostgreSQL tells when its postmaster started
-- (pg_postmaster_start_time()), not when crash recovery ended and it began to serve, which can be much later; so
-- the first writing Troupe session on a new server start records that moment here, and a worker without its lock is
-- not dead until the stale interval has passed since. One row: the current start's (older ones are deleted). With no
-- earlier start recorded (a new database), no worker can have been cut off: the postmaster's start time is recorded.
CREATE TABLE server_starts (
    started_at timestamptz PRIMARY KEY,
    serving_since timestamptz NOT NULL DEFAULT now()
);
