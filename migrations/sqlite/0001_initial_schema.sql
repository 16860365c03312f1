-- 0001: Troupe's first schema.
-- Why: everything a run needs to survive its process. `runs` carries the lease that lets one process at a time
-- drive a run; `agents` one row per agent of a run (type, status, epoch for fencing, restarts, last error);
-- `checkpoints` the retained state snapshots (row order follows time, so pages fill densely; the index finds an
-- agent's latest); `messages` the durable mailboxes, a row deleted in the same transaction that commits its
-- effect; `dead_letters` poison messages set aside; `events` the run's event log, numbered by `seq`; `commands`
-- the operator's control queue. Times are milliseconds since 1970 (UTC).

CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    blueprint TEXT NOT NULL,
    status TEXT NOT NULL,                 -- running | completed | failed | stopped
    parameters TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    ended_at INTEGER,
    error TEXT,
    owner_pid INTEGER,                    -- the process holding the lease, NULL when none
    owner_host TEXT,
    lease_token INTEGER NOT NULL DEFAULT 0,   -- grows with every new owner; writes carry it (fencing)
    heartbeat_at INTEGER
) STRICT;

CREATE TABLE agents (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    durability TEXT NOT NULL,
    status TEXT NOT NULL,                 -- running | exited | failed | stopped | quarantined
    epoch INTEGER NOT NULL DEFAULT 0,     -- the current incarnation's fencing token
    restarts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    updated_at INTEGER NOT NULL,
    UNIQUE (run_id, name)
) STRICT;

CREATE TABLE checkpoints (
    id INTEGER PRIMARY KEY,
    agent_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,                 -- 1, 2, 3… per agent, across incarnations
    epoch INTEGER NOT NULL,
    state_version INTEGER NOT NULL,       -- Agent.stateVersion of the writer
    created_at INTEGER NOT NULL,
    state BLOB NOT NULL
) STRICT;
CREATE UNIQUE INDEX checkpoints_by_agent ON checkpoints (agent_id, seq);

CREATE TABLE messages (
    id INTEGER PRIMARY KEY,               -- delivery order
    run_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    sender TEXT,                          -- NULL when sent from outside the run
    created_at INTEGER NOT NULL,
    payload BLOB NOT NULL
) STRICT;
CREATE INDEX messages_by_recipient ON messages (run_id, recipient, id);

CREATE TABLE dead_letters (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    agent TEXT NOT NULL,
    payload BLOB NOT NULL,
    error TEXT NOT NULL,
    failures INTEGER NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX dead_letters_by_run ON dead_letters (run_id, id);

CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    agent TEXT NOT NULL,
    incarnation INTEGER NOT NULL,
    kind TEXT NOT NULL,                   -- started | exited | restarting | escalated | dead-lettered | ...
    detail TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX events_by_run ON events (run_id, seq);

CREATE TABLE commands (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    verb TEXT NOT NULL,                   -- cancel | restart | pause | unpause
    agent TEXT,
    arguments TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL,
    applied_at INTEGER,
    result TEXT
) STRICT;
CREATE INDEX commands_pending ON commands (run_id, applied_at, id);
