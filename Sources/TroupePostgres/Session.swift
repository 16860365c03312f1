import FoundationEssentials
import Glibc
import Synchronization
import Troupe

/// The writer connection and what this process knows: the runs it leases, and every claimed agent's row and epoch.
///
/// `@unchecked Sendable` because the compiler cannot see thread confinement: every member is used only by the
/// ``Writer``'s thread (jobs run there and nowhere else), except ``cancelStatement()``, which reaches the current
/// connection through a lock and calls only its thread-safe ``PGConnection/cancel()``.
final class Session: @unchecked Sendable {
    struct AgentRow {
        var row: Int64
        var epoch: UInt64
        /// Whether the agent may have recorded steps (its claim found some, or it recorded one since): only then
        /// does a commit delete the steps of the units it finishes.
        var mayHaveSteps = false
    }

    private(set) var connection: PGConnection {
        didSet { cancelTarget.withLock { $0 = connection } }
    }
    /// The current connection, for ``cancelStatement()`` from other threads.
    private let cancelTarget: Mutex<PGConnection>
    let url: String
    let location: String
    let retention: Int
    let syncEveryCommit: Bool
    private(set) var leases: [RunID: Int64] = [:] {
        didSet { worker.leased.withLock { $0 = Set(leases.keys) } }
    }
    /// What the other threads may know of this process's worker registration (heartbeat age, drain, self-fence).
    let worker: WorkerState
    /// This store instance's worker row, once registered (at its first attach, or by `registerWorker`).
    private(set) var workerID: Int64?
    /// What it registers as: a plain process (capacity 0) until `registerWorker` says otherwise.
    var registration = WorkerRegistration(build: "", capacity: 0, blueprints: [])
    /// Milliseconds after which a silent worker's heartbeat is stale (five heartbeats).
    let staleAfter: Int64
    /// Runs whose lease another process took while this one held it: their writes fail as `leaseHeld`.
    private var lost: Set<RunID> = []
    /// Told when a lease is found taken over (on the writer thread; must not block). Set before the thread starts.
    var onLeaseLost: (@Sendable (RunID, TroupeError) -> Void)?
    /// The server's process for the session that holds this worker's liveness lock (`pg_backend_pid()`), kept
    /// because libpq forgets it once the connection is lost: that session may outlive the loss on this side.
    private var livenessSession: Int32 = 0
    private(set) var agents: [AgentID: AgentRow] = [:]
    /// Log lines each run has written through this session, to bound what it keeps (``LogRetention``).
    private var logLines: [RunID: Int] = [:]
    /// Undo steps for the in-memory state, run if the transaction rolls back.
    private var undo: [() -> Void] = []
    private var inTransaction = false
    /// Each run's number for the current transaction (`runs.txn`), taken with its lease check.
    private var transactionNumbers: [RunID: Int64] = [:]
    /// The current transaction's id, when a statement returned it (the commit statement does): no round trip to
    /// ask for it before COMMIT.
    private var knownTransactionID: Int64?
    let pid = Int64(getpid())
    let host = OwnerLiveness.localHost

    /// Whether commands and logged events are announced with `NOTIFY` (``PostgresStore/Configuration/notifications``).
    let notifications: Bool

    init(
        connection: PGConnection, url: String, retention: Int, syncEveryCommit: Bool, heartbeat: Duration, worker: WorkerState,
        notifications: Bool
    ) {
        self.notifications = notifications
        self.worker = worker
        self.connection = connection
        self.cancelTarget = Mutex(connection)
        self.url = url
        self.location = connection.location
        self.retention = retention
        self.syncEveryCommit = syncEveryCommit
        let milliseconds = heartbeat.components.seconds * 1000 + heartbeat.components.attoseconds / 1_000_000_000_000_000
        self.staleAfter = max(1, milliseconds) * 5
    }

    // MARK: Connection and transactions

    /// Opens a new session if the server closed this one (a restart, a terminated backend). The old session's
    /// transaction is gone with it; leases are rows and survive.
    func reconnectIfNeeded() throws {
        guard !connection.isHealthy else { return }
        do {
            connection = try PostgresStore.connect(url)
        } catch {
            if Self.saysServerIsRecovering(error) { worker.serverRecovering() }
            throw error
        }
        try recordServerStart()
        guard let id = workerID else { return }
        // The liveness lock went with the old session: take it again, if the registration is still ours.
        if try !takeLivenessLock(id, previousSession: livenessSession) {
            evicted(id, reason: "its registration was evicted while its database session was down")
        }
    }

    /// Takes this worker's liveness lock on the new session; `false` if its registration is gone (evicted).
    ///
    /// The session this process lost can still hold the lock: this side saw the connection end (a proxy or a
    /// network that cut it, a keepalive that gave up) before the server did, and the server's process for it is
    /// alive, idle, until it notices. That session is this process's own, so it is ended (`pg_terminate_backend`,
    /// waiting up to 5 s for it to go) and the lock taken again. Before, the worker took the failed lock for an
    /// eviction and gave up every run it drove. A lock held by any other session is not this process's to end: the
    /// registration is then given up, the safe side.
    private func takeLivenessLock(_ id: Int64, previousSession: Int32) throws -> Bool {
        let lock = "SELECT pg_try_advisory_lock(\(Self.lockNamespace), $1::int4) AND EXISTS (SELECT 1 FROM workers WHERE id = $1)"
        if try connection.query(lock, .int(id)).int64(0, 0) != 0 {
            livenessSession = connection.backendPID
            return true
        }
        guard previousSession > 0 else { return false }
        let ended = try connection.query(
            """
            SELECT pg_terminate_backend(l.pid, 5000) FROM pg_locks l WHERE \(Self.livenessLock(of: "$1")) AND l.granted
            AND l.pid = $2 AND EXISTS (SELECT 1 FROM workers WHERE id = $1)
            """,
            .int(id), .int(Int64(previousSession))
        )
        guard ended.count == 1, ended.int64(0, 0) != 0, try connection.query(lock, .int(id)).int64(0, 0) != 0 else { return false }
        livenessSession = connection.backendPID
        return true
    }

    /// Asks the server to stop the statement running on the writer connection (from any thread).
    func cancelStatement() {
        cancelTarget.withLock { $0.cancel() }
    }

    /// Runs `body` in one transaction. Without `sync`, the commit does not wait for the server's WAL flush
    /// (`synchronous_commit = off`): it survives this process, not a crash of the database server's host.
    ///
    /// Why not libpq's pipeline mode, which would send BEGIN, the batch's statement and COMMIT in one round trip:
    /// a session lost after sending a pipeline but before any of its results arrived leaves it unknowable whether
    /// the server committed (no transaction id was received yet), and a commit must never be written twice nor
    /// reported lost when it was not. Sent one after another, the commit statement returns the transaction's id
    /// before COMMIT is sent, so a session lost during COMMIT is settled by `txid_status` (``committed(_:)``). The
    /// cost is two loopback round trips per batch, not per commit.
    func transaction(sync: Bool, _ body: () throws -> Void) throws {
        undo.removeAll(keepingCapacity: true)
        transactionNumbers.removeAll(keepingCapacity: true)
        knownTransactionID = nil
        inTransaction = true
        defer {
            inTransaction = false
            transactionNumbers.removeAll(keepingCapacity: true)
        }
        do {
            try connection.execute(sync || syncEveryCommit ? "BEGIN" : "BEGIN; SET LOCAL synchronous_commit TO off")
            try body()
            // The transaction's id, if it wrote anything (a read-only one takes none, and writes nothing at COMMIT):
            // if the session dies during COMMIT, the server says whether it committed.
            let id = try knownTransactionID ?? connection.scalar("SELECT txid_current_if_assigned()")
            do {
                try connection.execute("COMMIT")
            } catch let error as PostgresError where error.isConnectionLost {
                // Committed or not, the server knows: ask it once it answers again, and never write twice.
                guard let id, try committed(id) else { throw error }
            }
        } catch {
            connection.rollback()
            for step in undo.reversed() { step() }
            undo.removeAll()
            throw error
        }
    }

    /// Whether transaction `id` committed, asked on a new session once the server answers (within the outage
    /// limit). Throws if the server does not answer by then.
    private func committed(_ id: Int64) throws -> Bool {
        try reconnect(within: outageLimit)
        let rows = try connection.query("SELECT txid_status($1) = 'committed'", .int(id))
        return rows.count > 0 && rows.int64(0, 0) != 0
    }

    /// How long a write waits for the server to answer again (a restart, a failover) before it fails: as long as
    /// the worker may go without a heartbeat before it fences itself.
    var outageLimit: Duration { .milliseconds(staleAfter / 5 * 4) }

    /// Opens a new session, retrying until the server answers or `limit` has passed (then throws the last error).
    /// While the server answers that it is recovering, the wait goes on: a long crash recovery is not an outage
    /// of unknown extent, and the self-fence does not come during it either (``WorkerState/fenceIfSilent(longerThan:)``).
    func reconnect(within limit: Duration) throws {
        var deadline = ContinuousClock.now + limit
        while true {
            do {
                try reconnectIfNeeded()
                return
            } catch {
                if Self.saysServerIsRecovering(error) { deadline = ContinuousClock.now + limit }
                guard ContinuousClock.now < deadline, !worker.isFenced else { throw error }
                usleep(100_000)
            }
        }
    }

    /// Whether connecting failed because the server is starting up or recovering (``PostgresError/saysServerIsRecovering``).
    private static func saysServerIsRecovering(_ error: any Error) -> Bool {
        ((error as? TroupeError)?.underlying as? PostgresError)?.saysServerIsRecovering == true
    }

    /// Turns the server's errors into errors that say what to do.
    func translate(_ error: any Error) -> any Error {
        guard let error = error as? PostgresError else { return error }
        return Self.translate(error, location: location)
    }

    static func translate(_ error: PostgresError, location: String) -> any Error {
        if error.isCancelled { return CancellationError() }
        if error.isConnectionLost {
            return TroupeError(
                .storage,
                "the PostgreSQL server at \(location) cannot be reached (\(error.message)). Nothing of this step was "
                    + "written; earlier commits are intact. Check the server, then retry or resume the run.",
                underlying: error
            )
        }
        if error.sqlState == "53100" || error.sqlState == "53200" {
            return TroupeError(
                .storage,
                "the PostgreSQL server at \(location) is out of disk or memory (\(error.message)). Nothing of this step "
                    + "was written; earlier commits are intact. Free space and resume the run.",
                underlying: error
            )
        }
        return TroupeError(.storage, "writing to \(location) failed: \(error.description)", underlying: error)
    }

    // MARK: Leases

    /// `run`'s number for the current write transaction, advanced once per transaction (with the lease check,
    /// while the run is leased). Checkpoints and messages record it, so that a fork can cut the run after it.
    func currentTransaction(_ run: RunID) throws -> Int64 {
        if let number = transactionNumbers[run], inTransaction { return number }
        if leases[run] != nil {
            try checkLease(run)
            if let number = transactionNumbers[run] { return number }
        }
        guard let number = try connection.scalar("UPDATE runs SET txn = txn + 1 WHERE id = $1 RETURNING txn", .text(run.rawValue)) else {
            throw TroupeError.unknownRun(run, in: location)
        }
        if inTransaction { transactionNumbers[run] = number }
        return number
    }

    /// Confirms, once per transaction, that this process still holds `run`'s lease, and renews its heartbeat.
    ///
    /// The check is an `UPDATE` of the run's row where the lease token is ours: it holds the row's lock until the
    /// transaction ends, so a takeover (which updates the same row) either committed before — the check finds
    /// another token, and nothing of the batch is written for the run — or waits until this batch is committed.
    /// Fencing never depends on this process's idea of time.
    func checkLease(_ run: RunID) throws {
        if inTransaction, transactionNumbers[run] != nil { return }
        guard let token = leases[run] else {
            if lost.contains(run) { throw Self.takenOver(run) }
            throw TroupeError(.notRunning, "run \(run) is not attached to \(location) in this process; start or resume it first.")
        }
        let number = try connection.scalar(
            "UPDATE runs SET heartbeat_at = now(), txn = txn + 1 WHERE id = $1 AND lease_token = $2 RETURNING txn",
            .text(run.rawValue), .int(token)
        )
        guard let number else {
            leases[run] = nil
            lost.insert(run)
            onLeaseLost?(run, Self.takenOver(run))
            throw Self.takenOver(run)
        }
        if inTransaction { transactionNumbers[run] = number }
    }

    private static func takenOver(_ run: RunID) -> TroupeError {
        TroupeError(
            .leaseHeld,
            "run \(run) was taken over by another process; this process stops writing to it. Check `troupe ps`."
        )
    }

    // MARK: The worker registration

    /// The first key of the workers' advisory locks (the second is the worker's id).
    static let lockNamespace = 7300

    /// The `pg_locks` rows (alias `l`) of the liveness lock of the worker whose id is the SQL expression `id`, held
    /// or waited for, in this database.
    static func livenessLock(of id: String) -> String {
        "l.locktype = 'advisory' AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            + "AND l.classid = \(lockNamespace) AND l.objid::int8 = \(id) AND l.objsubid = 2"
    }

    /// Whether the worker `alias` (a row of `workers`) is alive, as SQL: it holds its liveness lock, and its
    /// heartbeat is not stale both by the clock and relative to the newest heartbeat. Advisory locks are per
    /// database, and `pg_locks` lists every database's: only this database's count.
    ///
    /// A server that restarted lost every lock, and silenced every heartbeat for as long as it was down: until it
    /// has served for four times the stale interval, every registered worker is alive (it reconnects, takes its
    /// lock again and heartbeats within a second, or several on a loaded machine: one stale interval was overrun
    /// there, and twice it was overrun under CI's full load, evicting a worker that reconnected late), so the first
    /// worker back does not take every other worker's runs over. The cost: a worker that died with the server is
    /// found dead up to that much later than one that dies while it serves. Serving
    /// is counted from the moment the first Troupe session saw this start of the server (``recordServerStart()``),
    /// not from the start itself: a long crash recovery comes between, and no worker could reconnect during it.
    func aliveSQL(_ alias: String) -> String {
        let stale = "make_interval(secs => \(Double(staleAfter) / 1000))"
        return """
            (coalesce((SELECT now() - s.serving_since FROM server_starts s WHERE s.started_at = pg_postmaster_start_time()),
            interval '0') < 4 * \(stale) OR (EXISTS (SELECT 1 FROM pg_locks l WHERE \(Self.livenessLock(of: alias + ".id"))
            AND l.granted)
            AND NOT (\(alias).heartbeat_at < now() - \(stale)
            AND \(alias).heartbeat_at < (SELECT max(heartbeat_at) FROM workers) - \(stale))))
            """
    }

    /// Records, once per start of the server, when a writing Troupe session first saw it serving (migration
    /// 0004): the moment from which ``aliveSQL(_:)`` gives reconnecting workers the stale interval. A session on a
    /// server already recorded writes nothing. A database with no earlier start recorded (new, or just migrated)
    /// had no workers cut off by a restart to wait for: the server's own start time is recorded.
    func recordServerStart() throws {
        try connection.query(
            """
            WITH older AS (DELETE FROM server_starts WHERE started_at <> pg_postmaster_start_time() RETURNING 1)
            INSERT INTO server_starts (started_at, serving_since)
            SELECT pg_postmaster_start_time(), CASE WHEN EXISTS (SELECT 1 FROM older) THEN now() ELSE pg_postmaster_start_time() END
            ON CONFLICT DO NOTHING
            """
        )
    }

    /// This store instance's worker id, registering it first if needed: the row and its liveness lock are taken in
    /// the same transaction, so no scan can see the row without its lock.
    func ensureRegistered() throws -> Int64 {
        if let workerID { return workerID }
        guard
            let id = try connection.scalar(
                """
                INSERT INTO workers (host, pid, build, tags, capacity, blueprints, started_at, heartbeat_at)
                VALUES ($1, $2, $3, $4::text[], $5, $6::text[], now(), now()) RETURNING id
                """,
                .text(host), .int(pid), .text(registration.build), .text(Self.array(registration.tags)),
                .int(Int64(registration.capacity)), .text(Self.array(registration.blueprints))
            )
        else { throw PostgresError(sqlState: "XX000", message: "registering the worker returned no id") }
        try connection.query("SELECT pg_advisory_lock(\(Self.lockNamespace), $1::int4)", .int(id))
        livenessSession = connection.backendPID
        workerID = id
        undo.append { [unowned self] in
            workerID = nil
            _ = try? connection.query("SELECT pg_advisory_unlock(\(Self.lockNamespace), $1::int4)", .int(id))
        }
        worker.registered(id)
        // Processes that died owning no run, with no worker running to evict them, leave rows: the newcomer
        // deletes those whose session is gone (rows another transaction holds are skipped, never waited for).
        try connection.query(
            """
            DELETE FROM workers WHERE id IN (SELECT w.id FROM workers w WHERE w.id <> $1
            AND NOT EXISTS (SELECT 1 FROM pg_locks l WHERE \(Self.livenessLock(of: "w.id")))
            AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.owner_worker = w.id) FOR UPDATE SKIP LOCKED)
            """,
            .int(id)
        )
        return id
    }

    /// Updates this worker's registration (capacity, tags, blueprints), registering it first if needed.
    func register(_ registration: WorkerRegistration) throws -> Int64 {
        self.registration = registration
        let id = try ensureRegistered()
        try connection.query(
            "UPDATE workers SET build = $1, tags = $2::text[], capacity = $3, blueprints = $4::text[] WHERE id = $5",
            .text(registration.build), .text(Self.array(registration.tags)), .int(Int64(registration.capacity)),
            .text(Self.array(registration.blueprints)), .int(id)
        )
        return id
    }

    /// Renews this worker's heartbeat (one row, whatever its number of runs) and reads whether it should drain. A
    /// row that is gone means another worker evicted this one: every lease is lost. After a self-fence (no heartbeat
    /// for four intervals), the registration is given up and its runs released for the others.
    func heartbeat() {
        guard let id = workerID else { return }
        do {
            try reconnectIfNeeded()
            guard workerID != nil else { return }
            if worker.isFenced {
                try transaction(sync: false) {
                    try connection.query("DELETE FROM workers WHERE id = $1", .int(id))
                    try connection.query("UPDATE runs SET owner_worker = NULL WHERE owner_worker = $1", .int(id))
                }
                evicted(id, reason: "it fenced itself after \(worker.silence / 1000)s without a heartbeat")
                return
            }
            let rows = try connection.query("UPDATE workers SET heartbeat_at = now() WHERE id = $1 RETURNING draining", .int(id))
            guard rows.count == 1 else {
                evicted(id, reason: "another worker found it dead (silent or disconnected) and took its runs over")
                return
            }
            worker.beat(draining: rows.int64(0, 0) != 0)
        } catch {
            // Not renewed: the self-fence watchdog counts the silence.
        }
    }

    /// This process lost its registration: every run it leased is lost, and it registers again when it next
    /// attaches one.
    private func evicted(_ id: Int64, reason: String) {
        let error = TroupeError(.leaseHeld, "this process's worker registration \(id) was given up: \(reason). Its runs were stopped; other workers resume them.")
        for run in leases.keys {
            lost.insert(run)
            onLeaseLost?(run, error)
        }
        leases.removeAll()
        agents.removeAll()
        workerID = nil
        _ = try? connection.query("SELECT pg_advisory_unlock(\(Self.lockNamespace), $1::int4)", .int(id))
        worker.unregistered()
    }

    /// Deletes this worker's row if it drives no run (leases held here, or runs recorded as its own).
    func retire() throws {
        guard let id = workerID, leases.isEmpty else { return }
        let deleted = try connection.query(
            "DELETE FROM workers WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM runs WHERE owner_worker = $1)", .int(id)
        )
        guard deleted.affected == 1 else { return }
        _ = try? connection.query("SELECT pg_advisory_unlock(\(Self.lockNamespace), $1::int4)", .int(id))
        workerID = nil
        worker.unregistered()
    }

    /// Evicts dead workers (not this one) and releases their runs; returns how many were evicted. Runs in a
    /// transaction of its own (a standalone job).
    ///
    /// A worker found dead by its heartbeat's age may still have a session: a process stopped with `SIGSTOP`
    /// holds its liveness lock and, if it stopped mid-batch, an open transaction with its runs' rows locked. Those
    /// sessions (the one holding its liveness lock) are terminated first, which rolls their transaction back and
    /// frees the rows; waits for locks are bounded, so a scan never hangs behind a zombie.
    func evictDeadWorkers() throws -> Int {
        try connection.execute("SET LOCAL lock_timeout = '2s'")
        try connection.query(
            """
            SELECT pg_terminate_backend(l.pid, 2000) FROM workers w JOIN pg_locks l ON \(Self.livenessLock(of: "w.id"))
            AND l.granted
            WHERE w.id IS DISTINCT FROM $1 AND NOT \(aliveSQL("w"))
            """,
            .int(workerID ?? -1)
        )
        let evicted = try connection.query(
            """
            WITH dead AS (
                DELETE FROM workers w WHERE w.id IS DISTINCT FROM $1 AND NOT \(aliveSQL("w")) RETURNING id
            ), released AS (
                UPDATE runs SET owner_worker = NULL, owner_pid = NULL WHERE owner_worker IN (SELECT id FROM dead) RETURNING id
            )
            SELECT (SELECT count(*) FROM dead), (SELECT count(*) FROM released)
            """,
            .int(workerID ?? -1)
        )
        return evicted.int(0, 0)
    }

    /// Claims up to `limit` waiting runs of this worker's blueprints: of its build, of no build, or of a build no
    /// live worker has any more (a run follows the build that last drove it while that build runs). The candidates
    /// are locked with `SKIP LOCKED` and every predicate is on the locked row's own columns, so two workers never
    /// claim one run. They are chosen once, in a materialized CTE: as an `IN (subquery … LIMIT n)` the planner may
    /// scan the subquery again, and each scan skips the rows the previous one locked, so a worker claimed past its
    /// capacity (measured: 4 runs at capacity 2).
    func claimRuns(limit: Int) throws -> [RunRecord] {
        let id = try ensureRegistered()
        let rows = try connection.query(
            """
            WITH candidates AS MATERIALIZED (
                SELECT id FROM runs r WHERE owner_worker IS NULL AND status IN ('pending', 'running', 'paused')
                AND blueprint = ANY($2::text[])
                AND (r.build IS NULL OR r.build = $4 OR NOT EXISTS (SELECT 1 FROM workers w WHERE w.build = r.build AND \(aliveSQL("w"))))
                ORDER BY created_at FOR UPDATE SKIP LOCKED LIMIT $3
            )
            UPDATE runs r SET owner_worker = $1, updated_at = now() FROM candidates c
            WHERE r.id = c.id AND r.owner_worker IS NULL RETURNING r.id, r.blueprint, r.parameters, r.durability
            """,
            .int(id), .text(Self.array(registration.blueprints)), .int(Int64(max(0, limit))), .text(registration.build)
        )
        return (0..<rows.count).map { row in
            let parameters = (try? JSONDecoder().decode([String: String].self, from: Data((rows.text(row, 2) ?? "{}").utf8))) ?? [:]
            return RunRecord(
                id: RunID(rows.text(row, 0) ?? ""), blueprint: rows.text(row, 1) ?? "", parameters: parameters,
                durability: rows.text(row, 3).flatMap(Durability.init)
            )
        }
    }

    /// The owner of a run, as attach judges it.
    private func worker(_ id: Int64) throws -> (alive: Bool, pid: Int64, host: String, silence: Int64)? {
        let rows = try connection.query(
            "SELECT w.pid, w.host, (extract(epoch FROM now() - w.heartbeat_at) * 1000)::int8, \(aliveSQL("w")) FROM workers w WHERE w.id = $1",
            .int(id)
        )
        guard rows.count > 0 else { return nil }
        return (rows.int64(0, 3) != 0, rows.int64(0, 0), rows.text(0, 1) ?? "?", rows.int64(0, 2))
    }

    func attach(_ record: RunRecord) throws -> Bool {
        let me = try ensureRegistered()
        // The build the run records (the plain processes' registration has none).
        let build: String? = registration.build.isEmpty ? nil : registration.build
        let found = try connection.query(
            "SELECT owner_worker, lease_token FROM runs WHERE id = $1 FOR UPDATE", .text(record.id.rawValue)
        )
        var token: Int64 = 1
        let existing = found.count > 0
        if existing {
            // A run whose worker lives is that worker's (this process's, if another of its runs drives it; a run
            // this worker claimed waits for exactly this attach); one that ended has none; one whose worker died is
            // taken over.
            if !found.isNull(0, 0) {
                let owner = found.int64(0, 0)
                if owner == me {
                    if leases[record.id] != nil {
                        throw OwnerLiveness.heldElsewhere(record.id, pid: pid, host: host, silence: 0, timeout: staleAfter)
                    }
                } else if let worker = try worker(owner), worker.alive {
                    throw OwnerLiveness.heldElsewhere(record.id, pid: worker.pid, host: worker.host, silence: worker.silence, timeout: staleAfter)
                }
            }
            token = found.int64(0, 1) + 1
            try connection.query(
                """
                UPDATE runs SET owner_worker = $1, owner_pid = $2, owner_host = $3, lease_token = $4, heartbeat_at = now(),
                status = CASE status WHEN 'paused' THEN 'paused' ELSE 'running' END, updated_at = now(),
                ended_at = NULL, error = NULL, durability = coalesce($5, durability), build = coalesce($7, build) WHERE id = $6
                """,
                .int(me), .int(pid), .text(host), .int(token), .text(record.durability?.description), .text(record.id.rawValue),
                .text(build)
            )
            try setAsideOrphans(record)
        } else {
            let inserted = try connection.query(
                """
                INSERT INTO runs (id, blueprint, status, parameters, durability, created_at, updated_at, owner_worker,
                owner_pid, owner_host, lease_token, heartbeat_at, build)
                VALUES ($1, $2, 'running', $3, $4, now(), now(), $5, $6, $7, 1, now(), $8)
                ON CONFLICT (id) DO NOTHING
                """,
                .text(record.id.rawValue), .text(record.blueprint), .text(Self.json(record.parameters)),
                .text(record.durability?.description), .int(me), .int(pid), .text(host),
                .text(build)
            )
            // Another process created it between our look and our insert: it drives the run now.
            guard inserted.affected == 1 else { return try attach(record) }
        }
        let previous = leases[record.id]
        leases[record.id] = token
        let wasLost = lost.remove(record.id) != nil
        let forgotten = agents.filter { $0.key.run == record.id }
        for key in forgotten.keys { agents[key] = nil }
        transactionNumbers[record.id] = nil
        undo.append { [unowned self] in
            leases[record.id] = previous
            if wasLost { lost.insert(record.id) }
            for (key, value) in forgotten { agents[key] = value }
        }
        return existing
    }

    /// Durable messages to names the blueprint no longer has become dead letters.
    private func setAsideOrphans(_ record: RunRecord) throws {
        let orphans = try connection.query(
            """
            SELECT DISTINCT recipient FROM messages WHERE run_id = $1 AND consumed_txn IS NULL
            AND NOT (recipient = ANY($2::text[]))
            """,
            .text(record.id.rawValue), .text(Self.array(record.agents))
        )
        for row in 0..<orphans.count {
            guard let name = orphans.text(row, 0) else { continue }
            try connection.query(
                """
                INSERT INTO dead_letters (run_id, agent, payload, error, failures, created_at)
                SELECT run_id, recipient, payload, $1, 0, now() FROM messages
                WHERE run_id = $2 AND recipient = $3 AND consumed_txn IS NULL ORDER BY id
                """,
                .text("blueprint '\(record.blueprint)' has no agent '\(name)' any more; the message was set aside when run \(record.id) resumed."),
                .text(record.id.rawValue), .text(name)
            )
            try connection.query(
                "UPDATE messages SET consumed_txn = $1 WHERE run_id = $2 AND recipient = $3 AND consumed_txn IS NULL",
                .int(try currentTransaction(record.id)), .text(record.id.rawValue), .text(name)
            )
        }
    }

    /// Ends this process's lease of `run` with `outcome`. A worker (capacity above 0) stops a run only to hand it
    /// on (it drains, on SIGTERM or `troupe drain`): its `stopped` run goes back to `pending` in the same statement,
    /// for another worker to claim, so no moment (and no crash of the worker) leaves it stopped and unclaimed. A
    /// process driving its own run (`troupe run`) leaves it `stopped`, for `troupe resume`.
    func detach(_ run: RunID, outcome: RunOutcome, error: String?) throws {
        guard let token = leases[run] else {
            lost.remove(run)
            return
        }
        let handedOn = outcome == .stopped && registration.capacity > 0
        try connection.query(
            """
            UPDATE runs SET status = $1, error = $2, ended_at = CASE WHEN $5::bool THEN NULL ELSE now() END,
            updated_at = now(), owner_pid = NULL, owner_worker = NULL, heartbeat_at = NULL WHERE id = $3 AND lease_token = $4
            """,
            .text(handedOn ? RunStatus.pending.rawValue : outcome.rawValue), .text(error), .text(run.rawValue), .int(token),
            .text(handedOn ? "true" : "false")
        )
        leases[run] = nil
        undo.append { [unowned self] in leases[run] = token }
    }

    // MARK: Agents

    /// Claims agents in the current transaction: per run and kind of agent, one upsert of their rows (new epochs),
    /// then one statement each to read the latest checkpoints, adopt the durable messages accepted under an older
    /// lease, and read recorded steps (the first and last only for rows that existed before the claim).
    func claim(_ requests: [ClaimRequest]) throws -> [Claim] {
        var claims: [Claim?] = Array(repeating: nil, count: requests.count)
        var byRun: [RunID: [Int]] = [:]
        for (index, request) in requests.enumerated() { byRun[request.agent.run, default: []].append(index) }
        for (run, indices) in byRun {
            try checkLease(run)
            for (index, claim) in try claim(run, indices.map { requests[$0] }) { claims[indices[index]] = claim }
        }
        return claims.map { $0! }
    }

    private struct ClaimKind: Hashable {
        let type: String
        let durability: Durability
    }

    private func claim(_ run: RunID, _ requests: [ClaimRequest]) throws -> [(Int, Claim)] {
        struct Claimed {
            var row: Int64
            var epoch: UInt64
            var lastSequence: Int64
            var existed: Bool
            var latest: Checkpoint?
            var pending: [StoredMessage] = []
            var steps: [String: [UInt8]] = [:]
        }
        let position = Dictionary(requests.enumerated().map { ($1.agent.name, $0) }, uniquingKeysWith: { $1 })
        var claimed: [Claimed?] = Array(repeating: nil, count: requests.count)
        var byRow: [Int64: Int] = [:]
        var kinds: [ClaimKind: [String]] = [:]
        for request in requests {
            kinds[ClaimKind(type: request.type, durability: request.durability), default: []].append(request.agent.name)
        }
        for (kind, names) in kinds {
            // `xmax = 0` on a returned row: the claim inserted it (a new agent, with no history to read).
            let rows = try connection.query(
                """
                INSERT INTO agents (run_id, name, type, durability, status, epoch, updated_at)
                SELECT $1, n, $2, $3, 'running', 1, now() FROM unnest($4::text[]) AS n
                ON CONFLICT (run_id, name) DO UPDATE SET epoch = agents.epoch + 1, type = excluded.type,
                durability = excluded.durability, status = 'running', updated_at = excluded.updated_at
                RETURNING id, name, epoch, last_seq, xmax <> 0
                """,
                .text(run.rawValue), .text(kind.type), .text(kind.durability.description), .text(Self.array(names))
            )
            for row in 0..<rows.count {
                guard let name = rows.text(row, 1), let index = position[name] else { continue }
                claimed[index] = Claimed(
                    row: rows.int64(row, 0), epoch: UInt64(rows.int64(row, 2)), lastSequence: rows.int64(row, 3),
                    existed: rows.int64(row, 4) != 0
                )
                byRow[rows.int64(row, 0)] = index
            }
        }
        guard byRow.count == requests.count else {
            throw PostgresError(sqlState: "XX000", message: "a claim returned \(byRow.count) rows for \(requests.count) agents")
        }
        var previous: [(AgentID, AgentRow?)] = []
        previous.reserveCapacity(requests.count)
        for (index, request) in requests.enumerated() {
            let claim = claimed[index]!
            previous.append((request.agent, agents.updateValue(AgentRow(row: claim.row, epoch: claim.epoch), forKey: request.agent)))
        }
        undo.append { [unowned self] in for (agent, row) in previous { agents[agent] = row } }
        let existing = claimed.compactMap { $0!.existed ? $0!.row : nil }
        let ids = existing.isEmpty ? nil : Self.array(existing)

        if let ids {
            let latest = try connection.query(
                """
                SELECT a.id, c.seq, c.epoch, c.state_version, c.state FROM unnest($1::int8[]) AS a(id)
                JOIN LATERAL (SELECT seq, epoch, state_version, state FROM checkpoints WHERE agent_id = a.id
                ORDER BY seq DESC LIMIT 1) c ON true
                """,
                .text(ids)
            )
            for row in 0..<latest.count {
                guard let index = byRow[latest.int64(row, 0)] else { continue }
                let agent = requests[index].agent
                guard latest.int64(row, 1) == claimed[index]!.lastSequence else {
                    throw TroupeError.damagedCheckpoints(agent, found: latest.int64(row, 1), recorded: claimed[index]!.lastSequence, path: location)
                }
                claimed[index]!.latest = Checkpoint(
                    agent: agent, epoch: UInt64(latest.int64(row, 2)), sequence: UInt64(latest.int64(row, 1)),
                    stateVersion: latest.int(row, 3), state: latest.blob(row, 4)
                )
            }
        }
        for (index, claim) in claimed.enumerated() where claim!.latest == nil && claim!.lastSequence != 0 {
            throw TroupeError.damagedCheckpoints(requests[index].agent, found: 0, recorded: claim!.lastSequence, path: location)
        }
        // Messages accepted under an older lease are adopted by this one and returned, once.
        if let token = leases[run] {
            let adopted = try connection.query(
                """
                UPDATE messages SET lease = $1 WHERE run_id = $2 AND recipient = ANY($3::text[]) AND lease < $1
                AND consumed_txn IS NULL RETURNING id, recipient, sender, payload, trace
                """,
                .int(token), .text(run.rawValue), .text(Self.array(requests.map(\.agent.name)))
            )
            for row in 0..<adopted.count {
                guard let recipient = adopted.text(row, 1), let index = position[recipient] else { continue }
                claimed[index]!.pending.append(
                    StoredMessage(
                        id: adopted.int64(row, 0), recipient: recipient, sender: adopted.text(row, 2), payload: adopted.blob(row, 3),
                        trace: adopted.text(row, 4)
                    )
                )
            }
        }
        if let ids {
            let recorded = try connection.query("SELECT agent_id, key, result FROM steps WHERE agent_id = ANY($1::int8[])", .text(ids))
            for row in 0..<recorded.count {
                guard let index = byRow[recorded.int64(row, 0)] else { continue }
                if claimed[index]!.steps.isEmpty { agents[requests[index].agent]?.mayHaveSteps = true }
                claimed[index]!.steps[recorded.text(row, 1) ?? ""] = recorded.blob(row, 2)
            }
        }
        return claimed.enumerated().map { index, claim in
            let claim = claim!
            return (index, Claim(epoch: claim.epoch, latest: claim.latest, pending: claim.pending.sorted { $0.id < $1.id }, steps: claim.steps))
        }
    }

    /// Applies consecutive commits of one batch in one set-based statement, whatever their number: their runs'
    /// lease checks, their agents' rows, their checkpoints, the messages they consumed and those they sent. Returns
    /// each commit's outcome in order: the ids of the messages it sent, or its own failure (its lease or its
    /// incarnation fenced), which writes nothing of it. Throws only the server's errors, which abort the whole
    /// transaction.
    ///
    /// Fencing stays in the database: a run whose row no longer carries our lease token, or an agent whose row no
    /// longer carries the committing epoch, is left out of every write of the statement; the rows it updates stay
    /// locked until the transaction ends, so a takeover commits before (and fences the batch) or waits for it.
    func commit(batch commits: [Commit]) throws -> [Result<[Int64], any Error>] {
        var outcomes = [Result<[Int64], any Error>?](repeating: nil, count: commits.count)
        // An agent twice in one group would need its writes ordered; the engine never does that (an agent awaits
        // its commit), but stay exact if it happens: the group is split before the agent's second commit.
        var seen = Set<AgentID>()
        if let repeated = commits.firstIndex(where: { $0.agent.map { !seen.insert($0).inserted } ?? false }) {
            return try commit(batch: Array(commits[..<repeated])) + commit(batch: Array(commits[repeated...]))
        }

        // This process's record first: a run it does not lease, an incarnation it replaced.
        var candidates: [Int] = []
        for (index, commit) in commits.enumerated() {
            guard leases[commit.run] != nil else {
                outcomes[index] = .failure(
                    lost.contains(commit.run)
                        ? Self.takenOver(commit.run)
                        : TroupeError(.notRunning, "run \(commit.run) is not attached to \(location) in this process; start or resume it first.")
                )
                continue
            }
            if let agent = commit.agent, agents[agent]?.epoch != commit.epoch {
                outcomes[index] = .failure(TroupeError.fenced(agent, epoch: commit.epoch, current: agents[agent]?.epoch ?? 0))
                continue
            }
            candidates.append(index)
        }
        guard !candidates.isEmpty else { return outcomes.map { $0! } }

        // Then the database, in one statement: the runs' rows where the lease token is ours (each run's number for
        // this transaction advanced once; a run already checked in this transaction keeps its number), the agents'
        // rows where the epoch is the committing one, and, for the commits both accept, their checkpoints, the
        // messages they consumed and those they sent (ids in the order sent: the identity follows the insert order).
        var consumedIDs: [Int64] = [], consumedBy: [Int64] = []
        var sentBy: [Int64] = [], recipients: [String] = [], senders: [String?] = [], payloads: [[UInt8]] = []
        var traces: [String?] = []
        for index in candidates {
            let commit = commits[index]
            for id in commit.consumed {
                consumedIDs.append(id)
                consumedBy.append(Int64(index))
            }
            for message in commit.sent {
                sentBy.append(Int64(index))
                recipients.append(message.recipient)
                senders.append(commit.agent?.name)
                payloads.append(message.payload)
                traces.append(message.trace)
            }
        }
        func column<T>(_ value: (Commit) -> T) -> [T] { candidates.map { value(commits[$0]) } }
        let rows = try connection.query(
            """
            WITH c AS (
                SELECT * FROM unnest($1::int8[], $2::text[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], $7::int8[],
                    $8::bytea[], $9::int8[]) AS c(k, run, token, agent, epoch, seq, version, state, known)
            ), leased AS (
                UPDATE runs SET heartbeat_at = now(), txn = txn + 1
                FROM (SELECT DISTINCT run, token FROM c WHERE known IS NULL) r
                WHERE runs.id = r.run AND runs.lease_token = r.token RETURNING runs.id, runs.txn
            ), numbered AS (
                SELECT id, txn FROM leased UNION SELECT DISTINCT run, known FROM c WHERE known IS NOT NULL
            ), advanced AS (
                UPDATE agents SET last_seq = c.seq FROM c JOIN numbered n ON n.id = c.run
                WHERE c.seq IS NOT NULL AND agents.id = c.agent AND agents.epoch = c.epoch RETURNING agents.id
            ), ok AS (
                SELECT c.*, n.txn FROM c JOIN numbered n ON n.id = c.run
                WHERE c.seq IS NULL OR c.agent IN (SELECT id FROM advanced)
            ), checkpointed AS (
                INSERT INTO checkpoints (agent_id, seq, epoch, state_version, created_at, state, txn)
                SELECT agent, seq, epoch, version, now(), state, txn FROM ok WHERE seq IS NOT NULL
            ), consumed AS (
                UPDATE messages SET consumed_txn = ok.txn FROM unnest($10::int8[], $11::int8[]) AS m(id, k) JOIN ok ON ok.k = m.k
                WHERE messages.id = m.id AND messages.consumed_txn IS NULL
            ), sent AS (
                INSERT INTO messages (run_id, recipient, sender, created_at, payload, lease, sent_txn, trace)
                SELECT ok.run, s.recipient, s.sender, now(), s.payload, ok.token, ok.txn, s.trace
                FROM unnest($12::int8[], $13::text[], $14::text[], $15::bytea[], $16::text[])
                    WITH ORDINALITY AS s(k, recipient, sender, payload, trace, position)
                JOIN ok ON ok.k = s.k ORDER BY s.position RETURNING id
            )
            SELECT 0, id, txn FROM numbered UNION ALL SELECT 1, NULL, k FROM ok UNION ALL SELECT 2, NULL, id FROM sent
            UNION ALL SELECT 3, NULL, txid_current()
            """,
            .text(Self.array(candidates.map(Int64.init))), .text(Self.array(column(\.run.rawValue))),
            .text(Self.array(column { leases[$0.run] ?? 0 })),
            .text(Self.array(column { commit in commit.checkpoint == nil ? nil : commit.agent.flatMap { agents[$0].map { String($0.row) } } })),
            .text(Self.array(column { Int64($0.epoch) })),
            .text(Self.array(column { $0.checkpoint.map { String($0.sequence) } })),
            .text(Self.array(column { Int64($0.checkpoint?.stateVersion ?? 0) })),
            .byteaArray(column { $0.checkpoint?.state ?? [] }),
            .text(Self.array(column { transactionNumbers[$0.run].map(String.init) })),
            .text(Self.array(consumedIDs)), .text(Self.array(consumedBy)),
            .text(Self.array(sentBy)), .text(Self.array(recipients)), .text(Self.array(senders)), .byteaArray(payloads),
            .text(Self.array(traces))
        )
        var accepted = Set<Int>()
        var ids: [Int64] = []
        for row in 0..<rows.count {
            switch rows.int64(row, 0) {
            case 0: transactionNumbers[RunID(rows.text(row, 1) ?? "")] = rows.int64(row, 2)
            case 1: accepted.insert(rows.int(row, 2))
            case 2: ids.append(rows.int64(row, 2))
            default: knownTransactionID = rows.int64(row, 2)
            }
        }
        ids.sort()
        var next = 0
        for index in candidates {
            let commit = commits[index]
            guard accepted.contains(index) else {
                if transactionNumbers[commit.run] == nil {
                    // The run's row carries another token: taken over. Every later write of it fails the same way.
                    if leases[commit.run] != nil {
                        leases[commit.run] = nil
                        lost.insert(commit.run)
                        onLeaseLost?(commit.run, Self.takenOver(commit.run))
                    }
                    outcomes[index] = .failure(Self.takenOver(commit.run))
                } else {
                    outcomes[index] = .failure(TroupeError.fenced(commit.agent!, epoch: commit.epoch, current: 0))
                }
                continue
            }
            outcomes[index] = .success(Array(ids[next..<min(ids.count, next + commit.sent.count)]))
            next += commit.sent.count
            // What is left per commit is rare: retention (every `retention` checkpoints) and recorded steps.
            guard let agent = commit.agent, let row = agents[agent] else { continue }
            if let checkpoint = commit.checkpoint {
                let sequence = Int64(checkpoint.sequence)
                if sequence % Int64(retention) == 0, sequence > Int64(retention) { try prune(agent, row: row.row, before: sequence) }
            }
            if row.mayHaveSteps {
                for scope in commit.finishedSteps { try forgetSteps(of: row.row, scope: scope) }
            }
        }
        return outcomes.map { $0! }
    }

    /// Retention, amortised: every `retention` checkpoints, drops those older than the last `retention`, and the
    /// consumed messages no fork can need any more (consumed before the oldest kept checkpoint).
    private func prune(_ agent: AgentID, row: Int64, before sequence: Int64) throws {
        try connection.query("DELETE FROM checkpoints WHERE agent_id = $1 AND seq <= $2", .int(row), .int(sequence - Int64(retention)))
        try connection.query(
            """
            DELETE FROM messages WHERE run_id = $1 AND recipient = $2 AND consumed_txn IS NOT NULL
            AND consumed_txn < (SELECT txn FROM checkpoints WHERE agent_id = $3 ORDER BY seq LIMIT 1)
            """,
            .text(agent.run.rawValue), .text(agent.name), .int(row)
        )
    }

    func recordStep(_ agent: AgentID, epoch: UInt64, key: String, result: [UInt8]) throws {
        try checkLease(agent.run)
        guard let row = agents[agent], row.epoch == epoch else {
            throw TroupeError.fenced(agent, epoch: epoch, current: agents[agent]?.epoch ?? 0)
        }
        if !row.mayHaveSteps { agents[agent]?.mayHaveSteps = true }
        try connection.query(
            """
            INSERT INTO steps (agent_id, key, result, created_at) VALUES ($1, $2, $3, now())
            ON CONFLICT (agent_id, key) DO UPDATE SET result = excluded.result, created_at = excluded.created_at
            """,
            .int(row.row), .text(key), .bytes(result)
        )
    }

    /// Deletes agent `row`'s steps filed under `scope`: keys "SCOPE/NAME#N" lie in ["SCOPE/", "SCOPE0") byte-wise.
    private func forgetSteps(of row: Int64, scope: String) throws {
        try connection.query(
            "DELETE FROM steps WHERE agent_id = $1 AND key >= $2 AND key < $3", .int(row), .text(scope + "/"), .text(scope + "0")
        )
    }

    func deadLetter(_ letter: DeadLetter) throws {
        try checkLease(letter.agent.run)
        try connection.query(
            "INSERT INTO dead_letters (run_id, agent, payload, error, failures, created_at) VALUES ($1, $2, $3, $4, $5, now())",
            .text(letter.agent.run.rawValue), .text(letter.agent.name), .bytes(letter.message), .text(letter.error),
            .int(Int64(letter.failures))
        )
        guard let id = letter.messageID else { return }
        try connection.query(
            "UPDATE messages SET consumed_txn = $1 WHERE id = $2 AND consumed_txn IS NULL",
            .int(try currentTransaction(letter.agent.run)), .int(id)
        )
        // The message's unit of work ends here: its recorded steps must never be replayed to anything else.
        try connection.query(
            """
            DELETE FROM steps WHERE agent_id = (SELECT id FROM agents WHERE run_id = $1 AND name = $2)
            AND key >= $3 AND key < $4
            """,
            .text(letter.agent.run.rawValue), .text(letter.agent.name), .text("m\(id)/"), .text("m\(id)0")
        )
    }

    /// Moves dead letters back into their agents' durable inboxes, under lease 0 (accepted by no owner), so the
    /// agent's next claim adopts them. Returns the agents they went to.
    func requeue(_ run: RunID, ids: [Int64]?) throws -> [String] {
        let moved = try connection.query(
            """
            WITH moved AS (
                DELETE FROM dead_letters WHERE run_id = $1 AND ($2::int8[] IS NULL OR id = ANY($2::int8[]))
                RETURNING id, agent, payload
            )
            INSERT INTO messages (run_id, recipient, sender, created_at, payload, lease, sent_txn)
            SELECT $1, agent, NULL, now(), payload, 0, $3 FROM moved ORDER BY id RETURNING recipient
            """,
            .text(run.rawValue), .text(ids.map(Self.array)), .int(try currentTransaction(run))
        )
        return (0..<moved.count).map { moved.text($0, 0) ?? "" }
    }

    // MARK: Events

    /// Appends events to the log (inside the caller's transaction), and the agent rows' status they imply.
    func record(_ events: [Event]) throws {
        let events = events.filter { leases[$0.run] != nil }
        guard !events.isEmpty else { return }
        // The rows in one statement, in order (their numbers follow the insert order), and a notification per run
        // for the followers of its log (`troupe events --follow`), delivered when the transaction commits.
        try connection.query(
            """
            WITH logged AS (
                INSERT INTO events (run_id, agent, incarnation, kind, detail, created_at)
                SELECT u.run, u.agent, u.incarnation, u.kind, u.detail, to_timestamp(u.time)
                FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::float8[])
                    WITH ORDINALITY AS u(run, agent, incarnation, kind, detail, time, position)
                ORDER BY u.position RETURNING run_id
            )
            SELECT \(notifications ? "pg_notify('\(Listener.eventsChannel)', run_id)" : "run_id") FROM (SELECT DISTINCT run_id FROM logged) runs
            """,
            .text(Self.array(events.map(\.run.rawValue))), .text(Self.array(events.map(\.name))),
            .text(Self.array(events.map { Int64($0.incarnation) })), .text(Self.array(events.map(\.kind.name))),
            .text(Self.array(events.map(\.kind.detail))),
            .text("{" + events.map { String($0.time.timeIntervalSince1970) }.joined(separator: ",") + "}")
        )
        for event in events {
            if case .logged = event.kind {
                logLines[event.run, default: 0] += 1
                if logLines[event.run]! % LogRetention.every == 0 {
                    // The newest lines stay; older ones go.
                    try connection.query(
                        """
                        DELETE FROM events WHERE run_id = $1 AND kind = 'log' AND seq <= (
                            SELECT seq FROM events WHERE run_id = $1 AND kind = 'log' ORDER BY seq DESC LIMIT 1 OFFSET $2)
                        """,
                        .text(event.run.rawValue), .int(Int64(LogRetention.lines))
                    )
                }
            }
            // A persisting agent's claim, which precedes its start, already set its row running.
            let claimed = if case .started = event.kind { agents[AgentID(run: event.run, name: event.name)] != nil } else { false }
            if let status = event.kind.impliedStatus, !claimed {
                try connection.query(
                    """
                    UPDATE agents SET status = $1, last_error = coalesce($2, last_error), updated_at = now()
                    WHERE run_id = $3 AND name = $4
                    """,
                    .text(status.rawValue), .text(event.kind.error), .text(event.run.rawValue), .text(event.name)
                )
            }
            if case .restarting(_, let restarts) = event.kind {
                try connection.query(
                    "UPDATE agents SET restarts = $1, updated_at = now() WHERE run_id = $2 AND name = $3",
                    .int(Int64(restarts)), .text(event.run.rawValue), .text(event.name)
                )
            }
        }
    }

    // MARK: Encoding

    /// A PostgreSQL array literal of strings (`{"a","b\"c"}`), for one parameter of type `text[]`.
    static func array(_ values: [String]) -> String { array(values.map(Optional.some)) }

    /// A PostgreSQL array literal of strings or NULLs (`{"a",NULL}`), for one parameter of type `text[]`.
    static func array(_ values: [String?]) -> String {
        var out = "{"
        for (index, value) in values.enumerated() {
            if index > 0 { out += "," }
            guard let value else {
                out += "NULL"
                continue
            }
            out += "\""
            for character in value.unicodeScalars {
                if character == "\"" || character == "\\" { out += "\\" }
                out.unicodeScalars.append(character)
            }
            out += "\""
        }
        return out + "}"
    }

    /// A PostgreSQL array literal of integers, for one parameter of type `int8[]`.
    static func array(_ values: [Int64]) -> String {
        "{" + values.map(String.init).joined(separator: ",") + "}"
    }

    static func json(_ parameters: [String: String]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return (try? encoder.encode(parameters)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}
