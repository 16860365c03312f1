import Dispatch
import Glibc
import Synchronization
public import ServiceLifecycle
public import Troupe

/// A ``CheckpointStore`` in a SQLite database file: runs, agents, checkpoints, durable messages, dead letters and
/// the event log survive the process, `kill -9` included.
///
/// ```swift
/// let store = try await SQLiteStore(path: ".troupe/troupe.db")
/// let run = try Run(blueprint, configuration: .init(store: store, durability: .durable))
/// try await run.run()
/// await store.close()
/// ```
///
/// One store per database file and process: it owns the file's only writing connection, on a thread of its own,
/// and commits the work of all agents in shared transactions (group commit; see ``Configuration``). Readers (the
/// CLI, ``read(_:)``) use a separate read-only connection and, thanks to SQLite's WAL mode, never wait for the
/// writer.
///
/// Opening applies the migrations embedded in the binary. A file that is not a SQLite database, a database of
/// another program, and a database written by a newer Troupe are refused with a ``TroupeError`` and left
/// untouched.
///
/// ## Topics
/// ### Opening and closing
/// - ``init(path:configuration:)``
/// - ``Configuration``
/// - ``close()``
/// - ``defaultPath``
/// ### Reading
/// - ``read(_:)``
/// - ``checkpoints(of:)``
/// - ``events(of:since:agent:limit:)``
/// - ``pendingMessages(of:)``
/// - ``deadLetterMessages(of:)``
///
/// It is also the operator's view of the file (``RunReadModel``), its control queue (``ControlQueue``), and a
/// swift-service-lifecycle `Service` that closes the store when its service group shuts down.
public final class SQLiteStore: CheckpointStore {
    /// How the store writes.
    public struct Configuration: Sendable {
        /// Whether every commit waits for `fsync` (`synchronous=FULL`). By default commits wait until they are in
        /// the write-ahead log (`synchronous=NORMAL`), which survives the death of the process but not of the
        /// machine; agents can ask for `fsync` per commit with ``AgentOptions/syncCommits``.
        public var syncEveryCommit: Bool
        /// How long a write waits for another process's lock before failing with ``TroupeError/Code/busy``.
        public var busyTimeout: Duration
        /// How many checkpoints to keep per agent: each new one prunes the oldest kept one once there are more (a
        /// database opened with a smaller retention than before drops an agent's surplus at its next checkpoint).
        public var retention: Int
        /// How often this process renews the lease of the runs it drives. Another host may take a run over after
        /// three intervals of silence; on this host a dead owner is noticed at once.
        public var heartbeat: Duration
        /// The largest size the database may grow to, in bytes; a commit that would pass it fails as if the disk
        /// were full. `nil` for no limit but the disk's.
        public var sizeLimit: Int?
        /// Opens the database for reading only: nothing is created, migrated or written, so a database on a
        /// read-only file system, or one this user may only read, can be listed. Writes fail with
        /// ``TroupeError/Code/storage``.
        public var readOnly: Bool

        /// Creates a configuration.
        public init(
            syncEveryCommit: Bool = false,
            busyTimeout: Duration = .seconds(5),
            retention: Int = 3,
            heartbeat: Duration = .seconds(1),
            sizeLimit: Int? = nil,
            readOnly: Bool = false
        ) {
            self.readOnly = readOnly
            precondition(retention >= 1, "a store must keep at least one checkpoint per agent (retention \(retention))")
            self.syncEveryCommit = syncEveryCommit
            self.busyTimeout = busyTimeout
            self.retention = retention
            self.heartbeat = heartbeat
            self.sizeLimit = sizeLimit
        }
    }

    /// Where the CLI keeps its database unless told otherwise: `.troupe/troupe.db` under the working directory.
    public static let defaultPath = ".troupe/troupe.db"

    /// The database file.
    public let path: String
    let writer: Writer
    private let reader: Reader
    /// Milliseconds without a heartbeat after which another host's lease counts as expired.
    let heartbeatTimeout: Int64
    /// Fulfilled, per run, when the writer finds that another process took the run's lease.
    private let leaseWatch: LeaseWatch

    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    ///
    /// - Parameters:
    ///   - path: The database file. Missing parent directories are created.
    ///   - configuration: Durability of commits, busy timeout, retention, heartbeat.
    /// - Throws: ``TroupeError`` with ``TroupeError/Code/notADatabase`` (not SQLite, or damaged),
    ///   ``TroupeError/Code/schemaMismatch`` (another program's database, or an edited migration),
    ///   ``TroupeError/Code/futureSchema`` (a newer Troupe's database), ``TroupeError/Code/busy`` (locked past
    ///   the busy timeout) or ``TroupeError/Code/storage`` (cannot create or write the file).
    public init(path: String, configuration: Configuration = Configuration()) async throws {
        self.path = path
        let (session, readPath) = try await Self.onOwnThread { () throws -> (WriterSession, String) in
            guard configuration.readOnly else { return (try Self.open(path: path, configuration: configuration), path) }
            return try Self.openReadOnly(path: path, configuration: configuration)
        }
        let leaseWatch = LeaseWatch()
        self.leaseWatch = leaseWatch
        session.onLeaseLost = { run, error in leaseWatch.lost(run, error) }
        self.writer = try Writer(session: session)
        self.reader = Reader(path: readPath, busyTimeout: configuration.busyTimeout)
        self.heartbeatTimeout = session.leaseTimeout
    }

    /// Whether `path` names an in-memory database (`:memory:`, or a URI with `mode=memory`, which lets the
    /// store's reader share it through SQLite's shared cache).
    static func isInMemory(_ path: String) -> Bool {
        path == ":memory:" || (path.hasPrefix("file:") && path.contains("mode=memory"))
    }

    private static func open(path: String, configuration: Configuration) throws -> WriterSession {
        if !isInMemory(path), !path.hasPrefix("file:"), let slash = path.lastIndex(of: "/") {
            let directory = String(path[..<slash])
            if !directory.isEmpty { try createDirectories(directory) }
        }
        if !isInMemory(path), !path.hasPrefix("file:") { try createPrivately(path) }
        let connection: Connection
        do {
            connection = try Connection(path: path, mode: .readWrite, busyTimeout: configuration.busyTimeout)
        } catch {
            throw TroupeError(
                .storage,
                "cannot open the database '\(path)': \(error.message). Check the path and its permissions, or pass "
                    + "--database (or TROUPE_DATABASE) to use another file.",
                underlying: error
            )
        }
        let migrator = Migrator(path: path)
        do {
            // Check before writing anything, so that a file we refuse is left exactly as it was.
            _ = try migrator.history(connection)
            let mode = try connection.texts("PRAGMA journal_mode = WAL").first ?? ""
            if mode != "wal", !Self.isInMemory(path) {
                throw TroupeError(
                    .storage,
                    "the database '\(path)' cannot use write-ahead logging (journal mode stayed '\(mode)'); Troupe needs "
                        + "it so that readers never block writers. Put the database on a local file system."
                )
            }
            try connection.execute(configuration.syncEveryCommit ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL")
            if let limit = configuration.sizeLimit {
                let pageSize = try connection.scalar("PRAGMA page_size") ?? 4096
                _ = try connection.scalar("PRAGMA max_page_count = \(max(1, Int64(limit) / pageSize))")
            }
            try migrator.migrate(connection)
        } catch let error as SQLiteError {
            if error.isCorrupt {
                throw TroupeError(
                    .notADatabase,
                    "'\(path)' is not a SQLite database (or is damaged), so Troupe will not touch it. Move it away, "
                        + "or pass --database (or TROUPE_DATABASE) to use another file.",
                    underlying: error
                )
            }
            throw WriterSession.translate(error, path: path)
        }
        return WriterSession(
            connection: connection,
            retention: configuration.retention,
            synchronousFull: configuration.syncEveryCommit,
            heartbeat: configuration.heartbeat
        )
    }

    /// Opens an existing Troupe database without writing to it: its schema must be one this build reads as is.
    ///
    /// - Returns: The session, and the path its connections open: `path`, or, for a WAL database whose `-shm` file
    ///   neither exists nor can be created (a read-only file system), an `immutable=1` URI of it — safe, since no
    ///   process can be writing a WAL database there either.
    private static func openReadOnly(path: String, configuration: Configuration) throws -> (WriterSession, String) {
        func connect(_ target: String) throws -> (Connection, [Int: String]) {
            let connection: Connection
            do {
                connection = try Connection(path: target, mode: .readOnly, busyTimeout: configuration.busyTimeout)
            } catch {
                throw TroupeError(
                    .storage,
                    "cannot open the database '\(path)' for reading: \(error.message). Check the path and its permissions.",
                    underlying: error
                )
            }
            return (connection, try Migrator(path: path).history(connection))
        }
        var target = path
        var opened: (Connection, [Int: String])
        do {
            opened = try connect(target)
        } catch let error as SQLiteError where error.cannotOpen && !path.hasPrefix("file:") {
            target = "file:" + path.map { "?#%".contains($0) ? "%" + String($0.asciiValue ?? 0, radix: 16) : String($0) }
                .joined() + "?immutable=1"
            do {
                opened = try connect(target)
            } catch let error as SQLiteError {
                throw WriterSession.translate(error, path: path)
            }
        } catch let error as SQLiteError {
            throw WriterSession.translate(error, path: path)
        }
        let (connection, applied) = opened
        if applied.isEmpty {
            throw TroupeError(
                .notADatabase,
                "'\(path)' holds no Troupe database (it is empty); it was left untouched. Start a run to create one, or "
                    + "pass --database (or TROUPE_DATABASE) to name another file."
            )
        }
        let missing = Migrator.migrations.filter { applied[$0.id] == nil }.map(\.name)
        if !missing.isEmpty {
            throw TroupeError(
                .schemaMismatch,
                "'\(path)' was written by an older Troupe and lacks \(missing.joined(separator: ", ")); reading it "
                    + "needs them. `troupe db migrate --database \(path)` applies them (that writes to the file)."
            )
        }
        let session = WriterSession(
            connection: connection,
            retention: configuration.retention,
            synchronousFull: false,
            heartbeat: configuration.heartbeat
        )
        return (session, target)
    }

    /// Creates the database file, if it does not exist yet, readable and writable by its owner only (0600, whatever
    /// the umask): checkpoints hold agents' state. SQLite gives the `-wal` and `-shm` files the database file's mode.
    private static func createPrivately(_ path: String) throws {
        let descriptor = Glibc.open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            if errno == EEXIST { return }  // an existing database keeps the mode its owner gave it
            throw TroupeError(
                .storage,
                "cannot create the database '\(path)': \(String(cString: strerror(errno))). Check the directory's "
                    + "permissions, or pass --database (or TROUPE_DATABASE) to use another file."
            )
        }
        fchmod(descriptor, 0o600)
        Glibc.close(descriptor)
    }

    /// Creates the missing directories of the database's path, private to their owner (0700).
    private static func createDirectories(_ directory: String) throws {
        var current = directory.hasPrefix("/") ? "" : "."
        for component in directory.split(separator: "/") {
            current += "/" + component
            if mkdir(current, 0o700) != 0, errno != EEXIST {
                throw TroupeError(
                    .storage,
                    "cannot create the directory '\(current)' for the database: \(String(cString: strerror(errno))). "
                        + "Pass --database (or TROUPE_DATABASE) to put it elsewhere."
                )
            }
        }
    }

    /// Runs blocking work on a thread outside the cooperative pool.
    private static func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withUnsafeThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try work() })
            }
        }
    }

    /// Finishes the writes already queued, then closes the database. The store cannot be used afterwards.
    ///
    /// - Important: Call it when done (after the runs using it have ended): the writer thread keeps the store
    ///   alive until then.
    public func close() async {
        let writer = self.writer
        let reader = self.reader
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            DispatchQueue.global().async {
                // The reader first: the writer's last act folds the WAL into the database file, which an open read
                // transaction of our own would hold back.
                reader.close()
                writer.close()
                continuation.resume()
            }
        }
    }

    static func closedError() -> TroupeError {
        TroupeError(.notRunning, "the SQLite store was closed; open it again to write.")
    }

    // MARK: CheckpointStore

    public func attach(_ run: RunRecord) async throws -> Bool {
        let resumed: Bool
        do {
            // Within the busy timeout the operator gave, not the patience the run's own commits have.
            resumed = try await writer.perform(lockAttempts: 1) { session in try session.attach(run) }
        } catch let error as TroupeError where error.code == .busy {
            // The write lock stayed taken. If the run's own owner is the one that went silent holding it (stopped
            // with SIGSTOP in the middle of a commit), say so: that is what the operator can act on.
            throw await silentOwner(of: run.id, holdingLock: error) ?? error
        }
        leaseWatch.renew(run.id)
        return resumed
    }

    /// The error naming `run`'s owner, if another process owns it and has not renewed its lease; read from the last
    /// committed state, which readers see while the lock is held.
    private func silentOwner(of run: RunID, holdingLock busy: TroupeError) async -> TroupeError? {
        let timeout = heartbeatTimeout
        let owner = try? await read { connection -> (pid: Int64, host: String?, heartbeat: Int64)? in
            let find = try connection.statement("SELECT owner_pid, owner_host, heartbeat_at FROM runs WHERE id = ?")
            try find.bind(run.rawValue, at: 1)
            defer { find.reset() }
            guard try find.step(), !find.isNull(0), !find.isNull(2) else { return nil }
            return (find.int64(0), find.text(1), find.int64(2))
        }
        guard let owner, owner.pid != Int64(getpid()) || owner.host != WriterSession.localHost else {
            return nil
        }
        let time = now()
        guard time - owner.heartbeat >= timeout else { return nil }
        let held = WriterSession.heldElsewhere(
            run, pid: owner.pid, host: owner.host, heartbeat: owner.heartbeat, now: time, timeout: timeout
        )
        return TroupeError(
            .leaseHeld,
            held.message + " It also holds the database's write lock, so nothing else can be written meanwhile.",
            underlying: busy
        )
    }

    public func leaseLoss(of run: RunID) async -> TroupeError? {
        await leaseWatch.loss(of: run).wait()
    }

    public func detach(_ run: RunID, outcome: RunOutcome, error: String?) async {
        _ = try? await writer.perform { session in try session.detach(run, outcome: outcome, error: error) }
    }

    public func claim(_ agent: AgentID, type: String, durability: Durability, incarnation: UInt64) async throws -> Claim {
        try await writer.perform { session in try session.claim(agent, type: type, durability: durability) }
    }

    /// Claims the agents in writer jobs of up to 4,096 claims each, with the statements prepared once.
    public func claim(_ requests: [ClaimRequest]) async throws -> [Claim] {
        try await ClaimRequest.inBatches(requests) { chunk in
            try await writer.perform { session in try session.claim(chunk) }
        }
    }

    public func commit(_ commit: consuming Commit) async throws -> [Int64] {
        // The job takes the commit as it is (no copy of its arrays and strings); the continuation is its last part.
        let job = CommitJob(commit)
        return try await withUnsafeThrowingContinuation { continuation in
            job.continuation = continuation
            writer.submit(job)
        }
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

    /// Runs `body` with the store's read-only connection, on the reader thread, and returns its result.
    ///
    /// Reads see the last committed state and never wait for the writer. Cancelling the calling task stops the
    /// read, whether its statement is running or about to start (`sqlite3_interrupt` and a progress check); the
    /// call then throws `CancellationError`.
    public func read<T: Sendable>(_ body: @escaping @Sendable (Connection) throws -> T) async throws -> T {
        try await reader.read(body)
    }

    /// Runs `body` on the writer connection, outside the group-commit batches, in its own transaction (or in
    /// none, for statements that cannot run in one, such as `VACUUM` or some pragmas). For maintenance (pruning)
    /// and tests. Cancelling the calling task interrupts it and rolls it back.
    public func write<T: Sendable>(
        transaction: Bool = true,
        _ body: @escaping @Sendable (Connection) throws -> T
    ) async throws -> T {
        try await writer.performAlone { session in
            // The body may change what the writer keeps in memory of agents' checkpoints: it is read again.
            defer { session.forgetChains() }
            guard transaction else { return try body(session.connection) }
            return try session.connection.withTransaction(.immediate) { try body(session.connection) }
        }
    }

    /// The retained checkpoints of `agent`, oldest first.
    public func checkpoints(of agent: AgentID) async throws -> [Checkpoint] {
        try await read { [path] connection in
            let statement = try connection.statement(
                CheckpointChains.kept(of: Self.agentRowSQL)
                    + " SELECT c.seq, c.epoch, c.state_version, c.state FROM kept JOIN checkpoints c ON c.id = kept.id ORDER BY kept.seq"
            )
            defer { statement.reset() }
            try statement.bind([.text(agent.run.rawValue), .text(agent.name)])
            var result: [Checkpoint] = []
            while try statement.step() {
                result.append(
                    Checkpoint(
                        agent: agent,
                        epoch: UInt64(statement.int64(1)),
                        sequence: UInt64(statement.int64(0)),
                        stateVersion: statement.int(2),
                        state: statement.blob(3)
                    )
                )
            }
            try Self.checkLatest(of: agent, listed: result.last?.sequence ?? 0, connection: connection, path: path)
            return result
        }
    }

    /// The row id of agent `?2` of run `?1`, for ``CheckpointChains/kept(of:)``.
    static let agentRowSQL = "SELECT id FROM agents WHERE run_id = ?1 AND name = ?2"

    /// Checks, in the reader's snapshot, that the latest checkpoint listed for `agent` is the one its head
    /// (`checkpoint_heads`) records as committed last (the row the head names must be the agent's and carry that
    /// sequence), and that the heads of its run add up to the sum the run's commits recorded (``CheckpointChains``).
    ///
    /// - Throws: ``TroupeError/Code/corruptCheckpoint`` naming `troupe db check` on a mismatch.
    static func checkLatest(of agent: AgentID, listed: UInt64, connection: Connection, path: String) throws {
        let check = try connection.statement(
            """
            SELECT coalesce(h.last_seq, 0), c.agent_id IS a.id, c.seq, a.id FROM agents a
            LEFT JOIN checkpoint_heads h ON h.agent_id = a.id LEFT JOIN checkpoints c ON c.id = h.last_id
            WHERE a.run_id = ? AND a.name = ?
            """
        )
        defer { check.reset() }
        try check.bind([.text(agent.run.rawValue), .text(agent.name)])
        guard try check.step() else { return }
        let recorded = check.int64(0)
        let found = check.int64(1) == 1 ? check.int64(2) : 0
        guard found == recorded, Int64(listed) == recorded else {
            let reads = found != recorded
                ? (found != 0 ? found : CheckpointChains.newestSequence(ofAgentRow: check.int64(3), connection: connection))
                : Int64(listed)
            throw TroupeError.damagedCheckpoints(agent, found: reads, recorded: recorded, path: path)
        }
        try CheckpointChains.checkHeadSum(of: agent.run, connection: connection, path: path)
    }

    /// The event log of `run` after sequence number `since` (of one agent, if given), oldest first.
    public func events(of run: RunID, since: Int64 = 0, agent: String? = nil, limit: Int = 1_000_000) async throws -> [EventRecord] {
        try await read { connection in
            let statement = try connection.statement(
                """
                SELECT seq, agent, incarnation, kind, detail, created_at FROM events
                WHERE run_id = ? AND seq > ? AND (? IS NULL OR agent = ?) ORDER BY seq LIMIT ?
                """
            )
            defer { statement.reset() }
            try statement.bind([.text(run.rawValue), .integer(since), .text(agent), .text(agent), .integer(Int64(limit))])
            return try Self.eventRecords(statement, run: run)
        }
    }

    public func lastEvents(of run: RunID, count: Int, agent: String?) async throws -> [EventRecord] {
        try await read { connection in
            let statement = try connection.statement(
                """
                SELECT * FROM (SELECT seq, agent, incarnation, kind, detail, created_at FROM events
                WHERE run_id = ? AND (? IS NULL OR agent = ?) ORDER BY seq DESC LIMIT ?) ORDER BY seq
                """
            )
            defer { statement.reset() }
            try statement.bind([.text(run.rawValue), .text(agent), .text(agent), .integer(Int64(max(0, count)))])
            return try Self.eventRecords(statement, run: run)
        }
    }

    private static func eventRecords(_ statement: Statement, run: RunID) throws -> [EventRecord] {
        var result: [EventRecord] = []
        while try statement.step() {
            result.append(
                EventRecord(
                    sequence: statement.int64(0),
                    run: run,
                    agent: statement.text(1) ?? "",
                    incarnation: UInt64(max(0, statement.int64(2))),
                    event: statement.text(3) ?? "",
                    detail: statement.text(4) ?? "",
                    time: date(statement.int64(5))
                )
            )
        }
        return result
    }

    /// Durable messages of `run` not yet committed by their recipients, in delivery order.
    public func pendingMessages(of run: RunID) async throws -> [StoredMessage] {
        try await read { connection in
            let statement = try connection.statement(
                "SELECT id, recipient, sender, payload, trace FROM messages WHERE run_id = ? AND consumed_txn IS NULL ORDER BY id"
            )
            defer { statement.reset() }
            try statement.bind(run.rawValue, at: 1)
            var result: [StoredMessage] = []
            while try statement.step() {
                result.append(
                    StoredMessage(
                        id: statement.int64(0), recipient: statement.text(1) ?? "", sender: statement.text(2),
                        payload: statement.blob(3), trace: statement.text(4)
                    )
                )
            }
            return result
        }
    }

    /// The dead letters of `run` with their messages, oldest first.
    public func deadLetterMessages(of run: RunID) async throws -> [DeadLetter] {
        try await read { connection in
            let statement = try connection.statement(
                "SELECT agent, payload, error, failures FROM dead_letters WHERE run_id = ? ORDER BY id"
            )
            defer { statement.reset() }
            try statement.bind(run.rawValue, at: 1)
            var result: [DeadLetter] = []
            while try statement.step() {
                result.append(
                    DeadLetter(
                        agent: AgentID(run: run, name: statement.text(0) ?? ""),
                        message: statement.blob(1),
                        error: statement.text(2) ?? "",
                        failures: statement.int(3)
                    )
                )
            }
            return result
        }
    }
}

/// The store's read-only connection, on a serial queue of its own.
final class Reader: Sendable {
    private let queue = DispatchQueue(label: "troupe.sqlite.reader")
    private let path: String
    private let busyTimeout: Duration
    /// The connection, opened on first use. `Mutex` so that `onCancel` (any thread) can reach it to interrupt.
    private let connection = Mutex<ConnectionBox?>(nil)

    init(path: String, busyTimeout: Duration) {
        self.path = path
        self.busyTimeout = busyTimeout
    }

    func read<T: Sendable>(_ body: @escaping @Sendable (Connection) throws -> T) async throws -> T {
        let cancelled = StopFlag()
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<T, any Error>) in
                queue.async { [self] in
                    continuation.resume(
                        with: Result {
                            if cancelled.isRaised { throw CancellationError() }
                            let box = try open()
                            // An in-memory database shares its cache with the writer: a table the writer's open
                            // transaction has changed is locked (SQLITE_LOCKED), which the busy timeout does not
                            // cover. Retried here, within the busy timeout, as a file's readers never need to be.
                            let deadline = ContinuousClock.now + busyTimeout
                            while true {
                                do {
                                    return try box.connection.run(stoppingWhen: cancelled) {
                                        try box.connection.withTransaction(.deferred) { try body(box.connection) }
                                    }
                                } catch let error as SQLiteError {
                                    if error.isInterrupted { throw CancellationError() }
                                    if error.isTableLocked, ContinuousClock.now < deadline, !cancelled.isRaised {
                                        usleep(1_000)
                                        continue
                                    }
                                    throw WriterSession.translate(error, path: path)
                                }
                            }
                        }
                    )
                }
            }
        } onCancel: {
            cancelled.raise()
            connection.withLock { $0?.connection.interrupt() }
        }
    }

    /// Called on the reader queue only.
    private func open() throws -> ConnectionBox {
        if let box = connection.withLock({ $0 }) { return box }
        let box = ConnectionBox(try Connection(path: path, mode: .readOnly, busyTimeout: busyTimeout))
        connection.withLock { $0 = box }
        return box
    }

    func close() {
        queue.sync { connection.withLock { $0 = nil } }
    }
}

/// Carries a connection between the reader queue (which uses it) and cancellation handlers (which only call
/// ``Connection/interrupt()``).
///
/// `@unchecked Sendable` because the connection is used for statements only on the reader's serial queue, one
/// job at a time; from other threads only `interrupt()` is called, which SQLite documents as thread-safe.
final class ConnectionBox: @unchecked Sendable {
    let connection: Connection
    init(_ connection: Connection) { self.connection = connection }
}

extension SQLiteStore: Service {
    /// Runs the store as a swift-service-lifecycle `Service`: it stays open until the service group shuts down
    /// gracefully (or is cancelled), then closes. List it before the runs that use it, so that the group stops
    /// them first: `ServiceGroup(services: [store, run], …)`.
    public func run() async throws {
        try? await gracefulShutdown()
        await close()
    }
}
