-- 0001: Troupe's schema on PostgreSQL, the same model as the SQLite store's (migrations/sqlite, up to 0007).
-- Why: runs that survive their process and their host. `runs` carries the lease (owner, `lease_token`, heartbeat on
-- the database's clock) that lets one process at a time drive a run, and `txn`, the number each write transaction
-- that touches the run takes with its lease check (a fork cuts the run after one of them); `agents` one row per
-- agent (epoch for fencing, `last_seq` the checkpoint it committed last); `checkpoints` retained states; `messages`
-- the durable mailboxes (`lease`: the run's lease under which a message was accepted, so a claim adopts those of an
-- earlier owner once; `sent_txn`/`consumed_txn` for forks); `steps` recorded results of durable steps; dead
-- letters, the event log and the operator's command queue. Names and keys sort byte-wise (COLLATE "C") whatever
-- the database's locale: step keys are deleted by range ("SCOPE/" up to "SCOPE0"), and listings sort as on SQLite.

CREATE TABLE runs (
    id text COLLATE "C" PRIMARY KEY,
    blueprint text NOT NULL,
    status text NOT NULL,                        -- running | paused | completed | failed | stopped | cancelled
    parameters text NOT NULL DEFAULT '{}',
    durability text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    ended_at timestamptz,
    error text,
    owner_pid bigint,                            -- the process holding the lease, NULL when none
    owner_host text,
    lease_token bigint NOT NULL DEFAULT 0,       -- grows with every new owner; every write checks it (fencing)
    heartbeat_at timestamptz,
    txn bigint NOT NULL DEFAULT 0,
    tree text,
    tree_at timestamptz
) WITH (fillfactor = 50);

CREATE TABLE agents (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    type text NOT NULL,
    durability text NOT NULL,
    status text NOT NULL,
    epoch bigint NOT NULL DEFAULT 0,
    restarts integer NOT NULL DEFAULT 0,
    last_error text,
    last_seq bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL,
    UNIQUE (run_id, name)
) WITH (fillfactor = 70);

CREATE TABLE checkpoints (
    agent_id bigint NOT NULL,
    seq bigint NOT NULL,
    epoch bigint NOT NULL,
    state_version integer NOT NULL,
    created_at timestamptz NOT NULL,
    state bytea NOT NULL,
    txn bigint NOT NULL,
    PRIMARY KEY (agent_id, seq)
);

CREATE TABLE messages (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,   -- delivery order; a sequence never hands an id out twice
    run_id text COLLATE "C" NOT NULL,
    recipient text COLLATE "C" NOT NULL,
    sender text,
    created_at timestamptz NOT NULL,
    payload bytea NOT NULL,
    lease bigint NOT NULL DEFAULT 0,
    sent_txn bigint NOT NULL DEFAULT 0,
    consumed_txn bigint                          -- NULL while the message waits for its recipient
);
CREATE INDEX messages_pending ON messages (run_id, recipient, lease, id) WHERE consumed_txn IS NULL;
CREATE INDEX messages_by_run ON messages (run_id, id);

CREATE TABLE steps (
    agent_id bigint NOT NULL,
    key text COLLATE "C" NOT NULL,
    result bytea NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (agent_id, key)
);

CREATE TABLE dead_letters (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id text COLLATE "C" NOT NULL,
    agent text COLLATE "C" NOT NULL,
    payload bytea NOT NULL,
    error text NOT NULL,
    failures integer NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX dead_letters_by_run ON dead_letters (run_id, id);

CREATE TABLE events (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id text COLLATE "C" NOT NULL,
    agent text COLLATE "C" NOT NULL,
    incarnation bigint NOT NULL,
    kind text NOT NULL,
    detail text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL
);
CREATE INDEX events_by_run ON events (run_id, seq);

CREATE TABLE commands (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id text COLLATE "C" NOT NULL,
    verb text NOT NULL,
    agent text,
    arguments text NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL,
    applied_at timestamptz,
    result text,
    outcome text
);
CREATE INDEX commands_by_run ON commands (run_id, id);
