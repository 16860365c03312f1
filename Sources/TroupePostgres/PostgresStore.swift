import CPostgres
import Dispatch
import FoundationEssentials
import Glibc
import Synchronization
public import Troupe

/// A ``CheckpointStore`` in a PostgreSQL database: runs, agents, checkpoints, durable messages, dead letters, the
/// event log and the control queue survive the process and its host, and any process that reaches the server can
/// list, steer and resume them.
///
/// ```swift
/// let store = try await PostgresStore(url: "postgres://troupe@db.internal/troupe")
/// let run = try Run(blueprint, configuration: .init(store: store, durability: .durable))
/// try await run.run()
/// await store.close()
/// ```
///
/// Everything lives in the database's schema `troupe`, created and migrated on first open from migrations embedded
/// in the binary; a database written by a newer Troupe, or a `troupe` schema of another program, is refused and
/// left untouched. Like `SQLiteStore`, one store instance owns one writing connection on a thread of its own and
/// commits the work of all its agents in shared transactions (group commit); reads use a second connection and see
/// the last committed state. Blocking libpq calls never run on the cooperative thread pool.
///
/// Fencing happens in the database: every write transaction first updates its runs' rows where the lease token is
/// this process's, which a takeover's update of the same row excludes, and a checkpoint updates its agent's row only
/// where the epoch is the committing incarnation's. A process that lost a run's lease (taken over by another host
/// after its heartbeat went silent) has every later write of that run rejected with
/// ``TroupeError/Code/leaseHeld``.
///
/// ## Topics
/// ### Opening and closing
/// - ``init(url:configuration:)``
/// - ``Configuration``
/// - ``close()``
public final class PostgresStore: CheckpointStore {
    /// How the store writes.
    public struct Configuration: Sendable {
        /// Whether every commit waits for the server's WAL flush. By default a batch commits with
        /// `synchronous_commit = off` unless one of its commits asked for a flush (``AgentOptions/syncCommits``):
        /// it survives the death of this process, and a crash of the database server loses at most the last
        /// fraction of a second of commits (never part of one).
        public var syncEveryCommit: Bool
        /// How many checkpoints to keep per agent, at least (up to twice this many for a while).
        public var retention: Int
        /// How often this process heartbeats its worker row. Another worker may take its runs over once its
        /// heartbeat is five intervals old (by the database's clock, and relative to the newest worker's); this
        /// process stops its runs itself after four intervals without one. A process that died is noticed at the
        /// next scan of a live worker, whatever the interval (its session's lock is gone).
        public var heartbeat: Duration
        /// Opens without creating or migrating anything: the database must hold the schema this build reads.
        public var readOnly: Bool
        /// Whether commands, messages (`troupe send`) and logged events are announced with a notification
        /// (`NOTIFY`) when they commit, which wakes the owning worker and the followers of the log at once. Turn it
        /// off where notifications do not pass (a pooler in transaction mode): the owning worker then finds them
        /// within a second, by its poll.
        public var notifications: Bool

        /// Creates a configuration.
        public init(
            syncEveryCommit: Bool = false,
            retention: Int = 3,
            heartbeat: Duration = .seconds(1),
            readOnly: Bool = false,
            notifications: Bool = true
        ) {
            precondition(retention >= 1, "a store must keep at least one checkpoint per agent (retention \(retention))")
            self.syncEveryCommit = syncEveryCommit
            self.retention = retention
            self.heartbeat = heartbeat
            self.readOnly = readOnly
            self.notifications = notifications
        }
    }

    /// The database's URL without its password.
    public let redactedURL: String
    let url: String
    let writer: Writer
    let reader: Reader
    let listener: Listener
    /// SQL deciding whether the worker `w` is alive (its liveness lock, its heartbeat's age).
    let workerAlive: String
    let worker: WorkerState
    private let leaseWatch = LeaseWatch()

    /// Connects to the database at `url` and brings its `troupe` schema up to date.
    ///
    /// - Parameters:
    ///   - url: `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?…]` (or `postgresql://…`), as libpq reads it;
    ///     libpq's environment (`PGPASSWORD`, `PGSSLMODE`, `~/.pgpass`) applies.
    ///   - configuration: Commit durability, retention, heartbeat.
    /// - Throws: ``TroupeError`` with ``TroupeError/Code/storage`` (the server cannot be reached, or refused the
    ///   login), ``TroupeError/Code/schemaMismatch`` (another program's `troupe` schema, or an edited migration),
    ///   ``TroupeError/Code/futureSchema`` (a newer Troupe's database).
    public init(url: String, configuration: Configuration = Configuration()) async throws {
        self.url = url
        redactedURL = PGConnection.redacted(url)
        let worker = WorkerState()
        self.worker = worker
        let session = try await Self.onOwnThread { () throws -> Session in
            let connection = try Self.connect(url)
            let migrator = Migrator(location: PGConnection.redacted(url))
            do {
                if configuration.readOnly {
                    let applied = try migrator.history(connection)
                    let missing = Migrator.migrations.filter { applied[$0.id] == nil }.map(\.name)
                    guard missing.isEmpty else {
                        throw TroupeError(
                            applied.isEmpty ? .notADatabase : .schemaMismatch,
                            applied.isEmpty
                                ? "\(connection.location) holds no Troupe database yet; it was left untouched. Start a run to create one."
                                : "\(connection.location) lacks migrations \(missing.joined(separator: ", ")); `troupe db migrate` applies them."
                        )
                    }
                } else {
                    try migrator.migrate(connection)
                }
            } catch let error as PostgresError {
                throw Session.translate(error, location: connection.location)
            }
            let session = Session(
                connection: connection, url: url, retention: configuration.retention,
                syncEveryCommit: configuration.syncEveryCommit, heartbeat: configuration.heartbeat, worker: worker,
                notifications: configuration.notifications
            )
            // A store that only looks writes nothing; the others note the server's start (see `aliveSQL`).
            if !configuration.readOnly {
                do {
                    try session.recordServerStart()
                } catch let error as PostgresError {
                    throw Session.translate(error, location: connection.location)
                }
            }
            return session
        }
        let leaseWatch = self.leaseWatch
        session.onLeaseLost = { run, error in leaseWatch.lost(run, error) }
        workerAlive = session.aliveSQL("w")
        writer = try Writer(session: session, heartbeat: configuration.heartbeat)
        reader = Reader(url: url)
        listener = Listener(url: url)
        let heartbeat = configuration.heartbeat.components
        let fenceAfter = max(1, heartbeat.seconds * 1000 + heartbeat.attoseconds / 1_000_000_000_000_000) * 4
        _ = startThread(named: "troupe-pg-watch") { [closed, leaseWatch] in
            Self.watchdog(worker: worker, fenceAfter: fenceAfter, leaseWatch: leaseWatch, closed: closed)
        }
    }

    /// Raised by ``close()``: the watchdog thread ends.
    private let closed = Flag()

    /// The self-fence: a worker that could not renew its heartbeat for four intervals (its database is partitioned
    /// away, or its process was stopped) may have been found dead and its runs taken over by another worker. It
    /// stops every run at once — agents and their HTTP transfers are cancelled — without waiting to learn whether
    /// it was evicted, and gives its registration up when the database answers again.
    private static func watchdog(worker: WorkerState, fenceAfter: Int64, leaseWatch: LeaseWatch, closed: Flag) {
        while !closed.isRaised {
            usleep(250_000)
            let runs = worker.fenceIfSilent(longerThan: fenceAfter)
            guard !runs.isEmpty else { continue }
            let error = TroupeError(
                .leaseHeld,
                "this process could not renew its heartbeat with the database for \(worker.silence / 1000)s; another worker "
                    + "may have taken its runs over, so it stopped them (self-fence)."
            )
            for run in runs { leaseWatch.lost(run, error) }
        }
    }

    /// Opens a session on `url` with the schema `troupe` first on its search path.
    static func connect(_ url: String) throws -> PGConnection {
        let connection: PGConnection
        do {
            connection = try PGConnection(url: url)
        } catch let error as PostgresError {
            throw TroupeError(
                .storage,
                "cannot connect to the PostgreSQL server at \(PGConnection.redacted(url)): \(error.message). Check that "
                    + "it runs and the URL (user, host, port, database), or pass --database (or TROUPE_DATABASE) to "
                    + "use another store.",
                underlying: error
            )
        }
        try connection.execute("SET search_path TO troupe, pg_catalog")
        return connection
    }

    /// Runs blocking work on a thread outside the cooperative pool.
    static func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withUnsafeThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
        }
    }

    static func closedError() -> TroupeError {
        TroupeError(.notRunning, "the PostgreSQL store was closed; open it again to write.")
    }

    /// Finishes the writes already queued, then closes the connections. The store cannot be used afterwards.
    public func close() async {
        closed.raise()
        let (writer, reader, listener) = (self.writer, self.reader, self.listener)
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            DispatchQueue.global().async {
                listener.close()
                reader.close()
                writer.close()
                continuation.resume()
            }
        }
    }

    // MARK: CheckpointStore

    public func attach(_ run: RunRecord) async throws -> Bool {
        let resumed = try await writer.perform { session in try session.attach(run) }
        leaseWatch.renew(run.id)
        return resumed
    }

    public func detach(_ run: RunID, outcome: RunOutcome, error: String?) async {
        _ = try? await writer.perform { session in try session.detach(run, outcome: outcome, error: error) }
    }

    public func leaseLoss(of run: RunID) async -> TroupeError? {
        await leaseWatch.loss(of: run).wait()
    }

    public func claim(_ agent: AgentID, type: String, durability: Durability, incarnation: UInt64) async throws -> Claim {
        let request = ClaimRequest(agent: agent, type: type, durability: durability, incarnation: incarnation)
        return try await writer.perform { session in try session.claim([request])[0] }
    }

    /// Claims the agents in writer jobs of up to 4,096 claims each, with set-based statements.
    public func claim(_ requests: [ClaimRequest]) async throws -> [Claim] {
        try await ClaimRequest.inBatches(requests) { chunk in
            try await writer.perform { session in try session.claim(chunk) }
        }
    }

    public func commit(_ commit: consuming Commit) async throws -> [Int64] {
        try await writer.commit(commit)
    }

    public func recordStep(_ agent: AgentID, epoch: UInt64, key: String, result: [UInt8]) async throws {
        try await writer.perform(sync: true) { session in
            try session.recordStep(agent, epoch: epoch, key: key, result: result)
        }
    }

    public func deadLetter(_ letter: DeadLetter) async throws {
        try await writer.perform { session in try session.deadLetter(letter) }
    }

    public func record(_ event: Event) {
        writer.submit(event)
    }

    // MARK: Reading

    /// Runs `body` with the store's reading connection, in a read-only transaction that sees one snapshot.
    func read<T: Sendable>(_ body: @escaping @Sendable (PGConnection) throws -> T) async throws -> T {
        try await reader.read(body)
    }

    /// Runs `body` on the writer connection in a transaction of its own (maintenance: fork, prune, delete).
    /// Cancelling the calling task cancels its statement on the server and rolls it back.
    func write<T: Sendable>(_ body: @escaping @Sendable (PGConnection) throws -> T) async throws -> T {
        try await writer.performAlone { session in try body(session.connection) }
    }

    /// The retained checkpoints of `agent`, oldest first.
    public func checkpoints(of agent: AgentID) async throws -> [Checkpoint] {
        try await read { connection in
            let rows = try connection.query(
                """
                SELECT c.seq, c.epoch, c.state_version, c.state FROM checkpoints c JOIN agents a ON a.id = c.agent_id
                WHERE a.run_id = $1 AND a.name = $2 ORDER BY c.seq
                """,
                .text(agent.run.rawValue), .text(agent.name)
            )
            return (0..<rows.count).map { row in
                Checkpoint(
                    agent: agent, epoch: UInt64(rows.int64(row, 1)), sequence: UInt64(rows.int64(row, 0)),
                    stateVersion: rows.int(row, 2), state: rows.blob(row, 3)
                )
            }
        }
    }

    /// Durable messages of `run` not yet committed by their recipients, in delivery order.
    public func pendingMessages(of run: RunID) async throws -> [StoredMessage] {
        try await read { connection in
            let rows = try connection.query(
                "SELECT id, recipient, sender, payload, trace FROM messages WHERE run_id = $1 AND consumed_txn IS NULL ORDER BY id",
                .text(run.rawValue)
            )
            return (0..<rows.count).map { row in
                StoredMessage(
                    id: rows.int64(row, 0), recipient: rows.text(row, 1) ?? "", sender: rows.text(row, 2), payload: rows.blob(row, 3),
                    trace: rows.text(row, 4)
                )
            }
        }
    }

    /// The dead letters of `run` with their messages, oldest first.
    public func deadLetterMessages(of run: RunID) async throws -> [DeadLetter] {
        try await read { connection in
            let rows = try connection.query(
                "SELECT agent, payload, error, failures FROM dead_letters WHERE run_id = $1 ORDER BY id", .text(run.rawValue)
            )
            return (0..<rows.count).map { row in
                DeadLetter(
                    agent: AgentID(run: run, name: rows.text(row, 0) ?? ""), message: rows.blob(row, 1),
                    error: rows.text(row, 2) ?? "", failures: rows.int(row, 3)
                )
            }
        }
    }
}

/// The store's reading connection, on a serial queue of its own, opened on first use and again after a loss.
final class Reader: Sendable {
    private let queue = DispatchQueue(label: "troupe.postgres.reader")
    private let url: String
    /// The connection; behind a lock so that a cancellation (any thread) can reach it to cancel its statement.
    private let connection = Mutex<PGConnection?>(nil)

    init(url: String) { self.url = url }

    func read<T: Sendable>(_ body: @escaping @Sendable (PGConnection) throws -> T) async throws -> T {
        let cancelled = Flag()
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<T, any Error>) in
                queue.async { [self] in
                    continuation.resume(
                        with: Result {
                            // A session the server ended since the last read (a restart) fails at its first
                            // statement: a read changes nothing, so it is tried once more on a new session.
                            for attempt in 1... {
                                if cancelled.isRaised { throw CancellationError() }
                                let connection = try open()
                                do {
                                    try connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                                    defer { connection.rollback() }
                                    if cancelled.isRaised { throw CancellationError() }
                                    return try body(connection)
                                } catch let error as PostgresError {
                                    if error.isConnectionLost, !connection.isHealthy, attempt == 1 { continue }
                                    throw Session.translate(error, location: connection.location)
                                }
                            }
                            fatalError("unreachable")
                        }
                    )
                }
            }
        } onCancel: {
            cancelled.raise()
            connection.withLock { $0?.cancel() }
        }
    }

    /// Called on the reader queue only.
    private func open() throws -> PGConnection {
        if let current = connection.withLock({ $0 }), current.isHealthy { return current }
        let fresh = try PostgresStore.connect(url)
        connection.withLock { $0 = fresh }
        return fresh
    }

    func close() {
        queue.sync { connection.withLock { $0 = nil } }
    }
}
