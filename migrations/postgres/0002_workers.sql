-- 0002: workers — the processes that drive runs, on any host, and hold their runs' leases.
-- Why: with processes on many hosts, "is the owner alive?" cannot be a process table lookup. Each store instance
-- that drives runs registers a row here (its id never reused) and holds a session-level advisory lock (key: 7300,
-- id) for as long as its writing session lives, and heartbeats its row once per interval on the database's clock:
-- one write per process, whatever its number of runs. A run's lease names its worker (`owner_worker`); the worker
-- is dead when its lock is free (its process, host or connection died) or when its heartbeat is stale both by the
-- clock and relative to the newest heartbeat (a database restart silences everyone and evicts no one). Evicting a
-- worker deletes its row and releases its runs (`owner_worker` NULL) for other workers to claim: `pending` runs
-- (submitted, or released by a draining worker) and live runs whose worker is gone. `capacity` 0: a process that
-- drives the runs it starts and claims none.
CREATE TABLE workers (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    host text NOT NULL,
    pid bigint NOT NULL,
    build text NOT NULL,
    tags text[] NOT NULL DEFAULT '{}',
    capacity integer NOT NULL DEFAULT 0,
    blueprints text[] NOT NULL DEFAULT '{}',
    started_at timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL,
    draining boolean NOT NULL DEFAULT false
) WITH (fillfactor = 50);

ALTER TABLE runs ADD COLUMN owner_worker bigint;
CREATE INDEX runs_by_worker ON runs (owner_worker) WHERE owner_worker IS NOT NULL;
CREATE INDEX runs_waiting ON runs (created_at) WHERE owner_worker IS NULL AND status IN ('pending', 'running', 'paused');
