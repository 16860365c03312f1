import CSQLite
import DequeModule
import Dispatch
import FoundationEssentials
import Glibc
import Synchronization
import Troupe

/// The writer thread's connection and what it knows: which runs this process leases, and every claimed agent's
/// row and current epoch.
///
/// `@unchecked Sendable` because the compiler cannot see thread confinement: every member but
/// ``interruptStandalone()`` is used only by the ``Writer``'s thread (its jobs run there and nowhere else), so
/// no two threads ever touch the connection or the dictionaries at once. ``interruptStandalone()`` calls
/// `sqlite3_interrupt`, which SQLite documents as safe from any thread, and reads an atomic.
///
/// The state a commit touches is marked `@exclusivity(unchecked)`: the run-time checks that no two accesses to a
/// property overlap were about 2 % of the writer's time. They cannot overlap: only the writer's thread reaches them,
/// one statement at a time, and no access is held across a call that could reach the same property (no `inout`
/// argument or closure here captures one of them while it runs).
final class WriterSession: @unchecked Sendable {
    struct Lease {
        /// The run's lease token while this process owns it. Messages it accepts carry it; a claim adopts (and
        /// returns) the agent's messages that carry an older one.
        var token: Int64
    }

    struct AgentRow {
        var row: Int64
        var epoch: UInt64
        /// Whether the agent may have recorded steps: its claim found some, or it recorded one since. A commit
        /// deletes the steps of the units of work it finishes only then (most agents never record a step, and
        /// the deletes were an index probe per commit).
        var mayHaveSteps = false
        /// Its kept checkpoints as this session knows them; `nil` until its first commit reads them.
        var chain: Chain?
    }

    /// What the writer knows of an agent's kept checkpoints (``CheckpointChains``), so that a commit needs no read:
    /// their row ids, oldest first, and the sequence its head records.
    struct Chain {
        var ids: Deque<Int64>
        var lastSequence: Int64
        /// The ``WriterSession/chainGeneration`` it was read in: one from an older generation is read again.
        var generation: UInt64
    }

    let connection: Connection
    let path: String
    let retention: Int
    let synchronousFull: Bool
    let heartbeatInterval: DispatchTimeInterval
    /// How long without a heartbeat before another host's lease counts as expired.
    let leaseTimeout: Int64
    @exclusivity(unchecked) private(set) var leases: [RunID: Lease] = [:]
    /// Runs whose lease another process took over while this one held it: their writes fail as `leaseHeld`, not as
    /// "not attached", until this process attaches or detaches them again.
    private var lost: Set<RunID> = []
    /// Told when a lease is found taken over (on the writer thread; must not block). Set once, before the writer
    /// thread starts.
    var onLeaseLost: (@Sendable (RunID, TroupeError) -> Void)?
    @exclusivity(unchecked) private(set) var agents: [AgentID: AgentRow] = [:]
    /// Log lines each run has written through this session, to bound what it keeps (``LogRetention``).
    private var logLines: [RunID: Int] = [:]
    /// Undo steps for the in-memory state, run if the transaction rolls back.
    @exclusivity(unchecked) private var undo: [() -> Void] = []
    @exclusivity(unchecked) private var leaseChecked: Set<RunID> = []
    @exclusivity(unchecked) private var inTransaction = false
    /// Each run's number for the current transaction (`runs.txn`), taken with its lease check.
    @exclusivity(unchecked) private var transactionNumbers: [RunID: Int64] = [:]
    /// The run whose lease the current transaction checked last, with its transaction number: the commits of a batch
    /// are nearly all of one run, and comparing its id is cheaper than hashing it into the two tables above.
    @exclusivity(unchecked) private var lastChecked: (run: RunID, number: Int64)?
    private let standaloneRunning = Atomic<Bool>(false)
    /// Moves on whenever the chains kept in memory may disagree with the database: a rolled-back transaction, or a
    /// write made by a caller's statements (``SQLiteStore/write(transaction:_:)``). A chain read in an older
    /// generation is read again before its next commit.
    @exclusivity(unchecked) private var chainGeneration: UInt64 = 0
    /// How much each run's head sum (`runs.head_sum`) grows in the current transaction: written once, before COMMIT.
    @exclusivity(unchecked) private var headSumGrowth: [(run: RunID, by: Int64)] = []
    /// The statements of the hot paths, prepared once: no lookup by SQL text per commit.
    ///
    /// A batch's checkpoints are written together, up to ``rowsPerStatement`` rows a statement, when the batch ends
    /// (``flushCheckpoints()``): a commit checks, assigns its checkpoint's row id and updates the session's chains at
    /// once, and leaves the rows in ``pendingCheckpoints`` and ``pendingPrunes``. Multi-row statements cost SQLite
    /// about a third less per checkpoint than three statements per commit (2.9 µs against 1.8 µs a checkpoint in C,
    /// batches of 300).
    static let rowsPerStatement = 32
    /// Inserts `rows` checkpoints with the row ids the commits assigned.
    private static func insertCheckpointsSQL(rows: Int) -> String {
        "INSERT INTO checkpoints (id, agent_id, seq, epoch, state_version, created_at, state, txn, prev) VALUES "
            + repeatElement("(?, ?, ?, ?, ?, ?, ?, ?, ?)", count: rows).joined(separator: ", ")
    }
    /// The agents' heads: the sequence and the row id of the checkpoint each committed last (a later row of the
    /// same agent in the statement wins, as its sequence is later).
    private static func recordHeadsSQL(rows: Int) -> String {
        "INSERT INTO checkpoint_heads (agent_id, last_seq, last_id) VALUES "
            + repeatElement("(?, ?, ?)", count: rows).joined(separator: ", ")
            + " ON CONFLICT (agent_id) DO UPDATE SET last_seq = excluded.last_seq, last_id = excluded.last_id"
    }
    /// Retention: checkpoints by row id, each if it is still the agent's it was pruned for (SQLite looks each term
    /// up by row id).
    private static func pruneCheckpointsSQL(rows: Int) -> String {
        "DELETE FROM checkpoints WHERE " + repeatElement("(id = ? AND agent_id = ?)", count: rows).joined(separator: " OR ")
    }
    /// The multi-row statements by kind and row count, prepared on first use (index `rows - 1`).
    private var insertCheckpoints = [Statement?](repeating: nil, count: rowsPerStatement)
    private var recordHeads = [Statement?](repeating: nil, count: rowsPerStatement)
    private var pruneCheckpoints = [Statement?](repeating: nil, count: rowsPerStatement)

    /// A checkpoint a commit of the current transaction wrote, until ``flushCheckpoints()`` inserts it.
    private struct PendingCheckpoint {
        var id: Int64
        var agent: Int64
        var sequence: Int64
        var epoch: Int64
        var stateVersion: Int
        var createdAt: Int64
        var state: [UInt8]
        var transaction: Int64
        var previous: Int64?
    }
    @exclusivity(unchecked) private var pendingCheckpoints: [PendingCheckpoint] = []
    /// Checkpoints retention drops (row id, agent's row), deleted after the pending ones are inserted (a batch may
    /// drop one it inserts).
    @exclusivity(unchecked) private var pendingPrunes: [(id: Int64, agent: Int64)] = []
    /// The row id the next checkpoint takes, read once per transaction (the largest plus one, as SQLite would give);
    /// `nil` when it must be read again: at a transaction's start, and after work that may have written checkpoints.
    @exclusivity(unchecked) private var nextCheckpointID: Int64?
    /// The pending states laid end to end, bound in place while the inserts run.
    @exclusivity(unchecked) private var stateBytes: [UInt8] = []

    /// Claims a set of agents of one type and durability (`?5`, a JSON array of names): one statement, whatever
    /// their number. A claim gives each row a new epoch and returns what the claim needs of it.
    private static let upsertAgentsSQL = """
        INSERT INTO agents (run_id, name, type, durability, status, epoch, updated_at)
        SELECT ?1, value, ?2, ?3, 'running', 1, ?4 FROM json_each(?5) WHERE true
        ON CONFLICT (run_id, name) DO UPDATE SET epoch = epoch + 1, type = excluded.type,
        durability = excluded.durability, status = 'running', updated_at = excluded.updated_at
        RETURNING id, name, epoch
        """
    private lazy var upsertAgents = try? connection.statement(Self.upsertAgentsSQL)
    /// The lease check: a heartbeat, and the run's next transaction number, where the lease is still ours.
    private static let heartbeatSQL = "UPDATE runs SET heartbeat_at = ?, txn = txn + 1 WHERE id = ? AND lease_token = ? RETURNING txn"
    private lazy var leaseCheck = try? connection.statement(Self.heartbeatSQL)
    private static let updateStatusSQL =
        "UPDATE agents SET status = ?, last_error = coalesce(?, last_error), updated_at = ? WHERE run_id = ? AND name = ?"
    private lazy var updateStatus = try? connection.statement(Self.updateStatusSQL)
    private static let growHeadSumSQL = "UPDATE runs SET head_sum = head_sum + ?1 WHERE id = ?2"
    private lazy var growHeadSum = try? connection.statement(Self.growHeadSumSQL)
    private static let deleteStepsSQL = "DELETE FROM steps WHERE agent_id = ? AND key >= ? AND key < ?"
    private lazy var deleteSteps = try? connection.statement(Self.deleteStepsSQL)
    private static let consumeMessageSQL = "UPDATE messages SET consumed_txn = ? WHERE id = ? AND consumed_txn IS NULL"
    private lazy var consumeMessage = try? connection.statement(Self.consumeMessageSQL)
    private static let insertMessageSQL =
        "INSERT INTO messages (run_id, recipient, sender, created_at, payload, lease, sent_txn, trace) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    private lazy var insertMessage = try? connection.statement(Self.insertMessageSQL)
    private static let oldestKeptSQL = "SELECT txn FROM checkpoints WHERE id = ?"
    private lazy var oldestKept = try? connection.statement(Self.oldestKeptSQL)
    private static let deleteMessageSQL = "DELETE FROM messages WHERE id = ?"
    private lazy var deleteMessage = try? connection.statement(Self.deleteMessageSQL)
    /// The messages this process marked consumed, by agent, with the transaction that did: deleted by id once no
    /// fork can need them (they were consumed before the agent's oldest kept checkpoint). What an earlier process
    /// marked is swept when the run is attached again.
    @exclusivity(unchecked) private var consumedByAgent: [AgentID: [(transaction: Int64, ids: [Int64])]] = [:]
    private lazy var insertEvent = try? connection.statement(
        "INSERT INTO events (run_id, agent, incarnation, kind, detail, created_at) VALUES (?, ?, ?, ?, ?, ?)"
    )

    /// A hot statement, or the error that kept it from being prepared.
    private func prepared(_ statement: Statement?, _ sql: String) throws -> Statement {
        if let statement { return statement }
        return try connection.statement(sql)
    }
    let pid = Int64(getpid())
    let host = WriterSession.localHost

    init(connection: Connection, retention: Int, synchronousFull: Bool, heartbeat: Duration) {
        self.connection = connection
        self.path = connection.path
        self.retention = retention
        self.synchronousFull = synchronousFull
        let milliseconds = Int(heartbeat.components.seconds * 1000 + heartbeat.components.attoseconds / 1_000_000_000_000_000)
        self.heartbeatInterval = .milliseconds(max(1, milliseconds))
        self.leaseTimeout = Int64(milliseconds) * 3
    }

    // MARK: Transactions

    /// Runs `body` in one `BEGIN IMMEDIATE` transaction; at `sync`, the commit waits for `fsync`.
    func transaction(sync: Bool, _ body: () throws -> Void) throws {
        let full = sync || synchronousFull
        if full != synchronousFull { try connection.execute("PRAGMA synchronous = FULL") }
        defer { if full != synchronousFull { try? connection.execute("PRAGMA synchronous = NORMAL") } }
        undo.removeAll(keepingCapacity: true)
        leaseChecked.removeAll(keepingCapacity: true)
        inTransaction = true
        transactionNumbers.removeAll(keepingCapacity: true)
        lastChecked = nil
        headSumGrowth.removeAll(keepingCapacity: true)
        defer {
            inTransaction = false
            transactionNumbers.removeAll(keepingCapacity: true)
            lastChecked = nil
            headSumGrowth.removeAll(keepingCapacity: true)
        }
        nextCheckpointID = nil
        do {
            try connection.execute("BEGIN IMMEDIATE")
            try body()
            try flushCheckpoints()
            try writeHeadSums()
            try connection.execute("COMMIT")
        } catch {
            connection.rollback()
            pendingCheckpoints.removeAll(keepingCapacity: true)
            pendingPrunes.removeAll(keepingCapacity: true)
            for step in undo.reversed() { step() }
            undo.removeAll()
            forgetChains()
            throw error
        }
    }

    /// Writes the checkpoints the transaction's commits left pending, before work that is not a commit reads or
    /// writes the checkpoint tables, and forgets the next row id (that work may insert checkpoints of its own).
    func settleCheckpoints() throws {
        try flushCheckpoints()
        nextCheckpointID = nil
    }

    /// The row id of the next checkpoint: one more than the largest, as SQLite would give it (a row id only grows,
    /// which ``CheckpointChains`` relies on).
    private func takeCheckpointID() throws -> Int64 {
        if nextCheckpointID == nil || !inTransaction {
            nextCheckpointID = (try connection.scalar("SELECT coalesce(max(id), 0) + 1 FROM checkpoints") ?? 1)
                + Int64(pendingCheckpoints.count)
        }
        defer { nextCheckpointID! += 1 }
        return nextCheckpointID!
    }

    /// Inserts the pending checkpoints, records their agents' heads, then deletes the pending prunes, in statements
    /// of up to ``rowsPerStatement`` rows.
    func flushCheckpoints() throws {
        guard !pendingCheckpoints.isEmpty || !pendingPrunes.isEmpty else { return }
        defer {
            pendingCheckpoints.removeAll(keepingCapacity: true)
            pendingPrunes.removeAll(keepingCapacity: true)
            stateBytes.removeAll(keepingCapacity: true)
        }
        for checkpoint in pendingCheckpoints { stateBytes.append(contentsOf: checkpoint.state) }
        // The states are bound in place, inside this scope: each statement is reset (its bindings cleared) before it
        // returns, so no binding outlives the bytes.
        try stateBytes.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            var offset = 0
            try inChunks(of: pendingCheckpoints.count, Self.insertCheckpointsSQL, &insertCheckpoints) { statement, start, rows in
                for row in 0..<rows {
                    let checkpoint = pendingCheckpoints[start + row]
                    let at = Int32(row * 9)
                    try statement.bind(checkpoint.id, at: at + 1)
                    try statement.bind(checkpoint.agent, at: at + 2)
                    try statement.bind(checkpoint.sequence, at: at + 3)
                    try statement.bind(checkpoint.epoch, at: at + 4)
                    try statement.bind(checkpoint.stateVersion, at: at + 5)
                    try statement.bind(checkpoint.createdAt, at: at + 6)
                    try statement.bindInPlace(bytes, from: offset, count: checkpoint.state.count, at: at + 7)
                    offset += checkpoint.state.count
                    try statement.bind(checkpoint.transaction, at: at + 8)
                    if let previous = checkpoint.previous { try statement.bind(previous, at: at + 9) }
                }
            }
        }
        try inChunks(of: pendingCheckpoints.count, Self.recordHeadsSQL, &recordHeads) { statement, start, rows in
            for row in 0..<rows {
                let checkpoint = pendingCheckpoints[start + row]
                let at = Int32(row * 3)
                try statement.bind(checkpoint.agent, at: at + 1)
                try statement.bind(checkpoint.sequence, at: at + 2)
                try statement.bind(checkpoint.id, at: at + 3)
            }
        }
        try inChunks(of: pendingPrunes.count, Self.pruneCheckpointsSQL, &pruneCheckpoints) { statement, start, rows in
            for row in 0..<rows {
                try statement.bind(pendingPrunes[start + row].id, at: Int32(row * 2 + 1))
                try statement.bind(pendingPrunes[start + row].agent, at: Int32(row * 2 + 2))
            }
        }
    }

    /// Runs a multi-row statement over `count` rows, ``rowsPerStatement`` at a time: `bind` binds the rows from
    /// `start` (`rows` of them), then the statement runs and is reset.
    private func inChunks(
        of count: Int,
        _ sql: (Int) -> String,
        _ statements: inout [Statement?],
        bind: (Statement, _ start: Int, _ rows: Int) throws -> Void
    ) throws {
        var start = 0
        while start < count {
            let rows = min(Self.rowsPerStatement, count - start)
            let statement: Statement
            if let prepared = statements[rows - 1] {
                statement = prepared
            } else {
                statement = try connection.statement(sql(rows))
                statements[rows - 1] = statement
            }
            do {
                try bind(statement, start, rows)
            } catch {
                statement.reset()
                throw error
            }
            try statement.execute()
            start += rows
        }
    }

    /// Makes every chain kept in memory be read again before its next use (the database may say otherwise now).
    func forgetChains() { chainGeneration &+= 1 }

    /// Adds each run's growth of its heads' sequences, in this transaction, to its recorded sum.
    private func writeHeadSums() throws {
        guard !headSumGrowth.isEmpty else { return }
        let grow = try prepared(growHeadSum, Self.growHeadSumSQL)
        for (run, amount) in headSumGrowth where amount != 0 {
            try grow.bind(amount, at: 1)
            try grow.bind(run.rawValue, at: 2)
            try grow.execute()
        }
    }

    /// Notes that one of `run`'s heads moved by `amount` sequences.
    private func growHeadSum(of run: RunID, by amount: Int64) {
        if let last = headSumGrowth.indices.last, headSumGrowth[last].run == run {
            headSumGrowth[last].by += amount
        } else if let index = headSumGrowth.firstIndex(where: { $0.run == run }) {
            headSumGrowth[index].by += amount
        } else {
            headSumGrowth.append((run, amount))
        }
    }

    /// Reads the kept checkpoints of the agent at `index` in ``agents`` along its chain, if this session does not know
    /// them (yet, or any more). Returns the sequence its head records and the row id of its latest checkpoint.
    private func readChain(at index: Dictionary<AgentID, AgentRow>.Index) throws -> (lastSequence: Int64, lastID: Int64?) {
        if let generation = agents.values[index].chain?.generation, generation == chainGeneration {
            return (agents.values[index].chain!.lastSequence, agents.values[index].chain!.ids.last)
        }
        let row = agents.values[index].row
        let head = try connection.statement("SELECT last_seq FROM checkpoint_heads WHERE agent_id = ?")
        try head.bind(row, at: 1)
        let lastSequence = try head.step() ? head.int64(0) : 0
        head.reset()
        let walk = try connection.statement(
            CheckpointChains.kept(of: "?1") + " SELECT id FROM kept ORDER BY depth DESC"
        )
        defer { walk.reset() }
        try walk.bind(row, at: 1)
        var ids = Deque<Int64>()
        while try walk.step() { ids.append(walk.int64(0)) }
        agents.values[index].chain = Chain(ids: ids, lastSequence: lastSequence, generation: chainGeneration)
        return (lastSequence, ids.last)
    }

    /// `run`'s number for the current write transaction: its `runs.txn`, advanced once per transaction (with the
    /// lease check, in the same statement, while the run is leased). Checkpoints and messages record it, so that a
    /// fork can cut the run right after any of its transactions. Per run: a fork never spans runs, and a run is
    /// written by one process at a time.
    func currentTransaction(_ run: RunID) throws -> Int64 {
        if inTransaction, let last = lastChecked, last.run == run { return last.number }
        if let number = transactionNumbers[run], inTransaction { return number }
        if leases[run] != nil {
            try checkLease(run)
            if let number = transactionNumbers[run] { return number }
        }
        let next = try connection.statement("UPDATE runs SET txn = txn + 1 WHERE id = ? RETURNING txn")
        defer { next.reset() }
        try next.bind(run.rawValue, at: 1)
        guard try next.step() else { throw TroupeError.unknownRun(run, in: "'\(path)'") }
        let number = next.int64(0)
        if inTransaction { transactionNumbers[run] = number }
        return number
    }

    func beginStandalone() { standaloneRunning.store(true, ordering: .sequentiallyConsistent) }
    func endStandalone() { standaloneRunning.store(false, ordering: .sequentiallyConsistent) }

    /// Interrupts a standalone job (a long maintenance statement) if one is running.
    func interruptStandalone() {
        if standaloneRunning.load(ordering: .sequentiallyConsistent) { connection.interrupt() }
    }

    /// Turns SQLite's errors into errors that say what to do.
    func translate(_ error: any Error) -> any Error {
        guard let error = error as? SQLiteError else { return error }
        return Self.translate(error, path: path)
    }

    /// Turns SQLite's errors into errors that say what to do.
    static func translate(_ error: SQLiteError, path: String) -> any Error {
        if error.isBusy {
            return TroupeError(
                .busy,
                "the database '\(path)' is locked by another process and stayed locked past the busy timeout. "
                    + "Nothing was written; retry, or find the process holding it.",
                underlying: error
            )
        }
        if error.isFull {
            return TroupeError(
                .storage,
                "the database '\(path)' is full (disk or size limit). Nothing of this step was written; earlier "
                    + "commits are intact. Free space and resume the run.",
                underlying: error
            )
        }
        if error.isReadOnly {
            return TroupeError(
                .storage,
                "the database '\(path)' cannot be written (read-only file or file system). Nothing of this step was "
                    + "written; earlier commits are intact. Make it writable and resume the run.",
                underlying: error
            )
        }
        if error.isCorrupt {
            return TroupeError(.notADatabase, "the database '\(path)' is damaged: \(error.message)", underlying: error)
        }
        if error.isInterrupted { return CancellationError() }
        return TroupeError(.storage, "writing to '\(path)' failed: \(error.message)", underlying: error)
    }

    func close() {
        connection.rollback()
        // A clean close folds the WAL into the database file and empties it, so that the file alone (a copy, a
        // backup) holds every commit. Best effort: a reader in another process may hold part of it back, and the
        // WAL then keeps those pages, as safe as before.
        try? connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    }

    // MARK: Leases

    /// Confirms, once per transaction, that this process still holds `run`'s lease, and renews its heartbeat.
    func checkLease(_ run: RunID) throws {
        if inTransaction, let last = lastChecked, last.run == run { return }
        guard !leaseChecked.contains(run) else { return }
        guard let lease = leases[run] else {
            if lost.contains(run) { throw Self.takenOver(run) }
            throw TroupeError(.notRunning, "run \(run) is not attached to '\(path)' in this process; start or resume it first.")
        }
        let beat = try prepared(leaseCheck, Self.heartbeatSQL)
        defer { beat.reset() }
        try beat.bind(now(), at: 1)
        try beat.bind(run.rawValue, at: 2)
        try beat.bind(lease.token, at: 3)
        guard try beat.step() else {
            leases[run] = nil
            lost.insert(run)
            onLeaseLost?(run, Self.takenOver(run))
            throw Self.takenOver(run)
        }
        if inTransaction {
            transactionNumbers[run] = beat.int64(0)
            lastChecked = (run, beat.int64(0))
        }
        leaseChecked.insert(run)
    }

    private static func takenOver(_ run: RunID) -> TroupeError {
        TroupeError(
            .leaseHeld,
            "run \(run) was taken over by another process; this process stops writing to it. Check `troupe ps`."
        )
    }

    /// Renews the heartbeat of every leased run (called when the writer is idle).
    func heartbeat() {
        guard !leases.isEmpty else { return }
        try? transaction(sync: false) {
            for run in leases.keys { try? checkLease(run) }
        }
    }

    func attach(_ record: RunRecord) throws -> Bool {
        let find = try connection.statement(
            "SELECT status, owner_pid, owner_host, heartbeat_at, lease_token FROM runs WHERE id = ?"
        )
        try find.bind(record.id.rawValue, at: 1)
        var existing: (status: String, pid: Int64?, host: String?, heartbeat: Int64, token: Int64)?
        if try find.step() {
            existing = (
                find.text(0) ?? "", find.isNull(1) ? nil : find.int64(1), find.text(2), find.int64(3), find.int64(4)
            )
        }
        find.reset()
        let time = now()
        var token: Int64 = 1
        if let existing {
            // Whatever its status (running, paused): a run whose owner lives is that owner's. A run that ended has no
            // owner (detach clears it); one whose owner died is taken over. A paused run stays paused: its new
            // owner's controller stops the agents again.
            if let owner = existing.pid,
                isAlive(pid: owner, host: existing.host, heartbeat: existing.heartbeat, now: time)
            {
                throw Self.heldElsewhere(record.id, pid: owner, host: existing.host, heartbeat: existing.heartbeat, now: time, timeout: leaseTimeout)
            }
            token = existing.token + 1
            try connection.statement(
                """
                UPDATE runs SET owner_pid = ?, owner_host = ?, lease_token = ?, heartbeat_at = ?,
                status = CASE status WHEN 'paused' THEN 'paused' ELSE 'running' END,
                updated_at = ?, ended_at = NULL, error = NULL, durability = coalesce(?, durability) WHERE id = ?
                """
            ).run(
                .integer(pid), .text(host), .integer(token), .integer(time), .integer(time),
                .text(record.durability?.description), .text(record.id.rawValue)
            )
        } else {
            try connection.statement(
                """
                INSERT INTO runs (id, blueprint, status, parameters, durability, created_at, updated_at, owner_pid,
                owner_host, lease_token, heartbeat_at) VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, 1, ?)
                """
            ).run(
                .text(record.id.rawValue), .text(record.blueprint), .text(Self.json(record.parameters)),
                .text(record.durability?.description), .integer(time), .integer(time), .integer(pid), .text(host),
                .integer(time)
            )
        }
        if existing != nil {
            // A head page gone back to an older version would resume its agents from older states: refused here,
            // before any of them is claimed.
            try CheckpointChains.checkHeadSum(of: record.id, connection: connection, path: path)
            try setAsideOrphans(record, time: time)
            try sweepConsumed(of: record.id)
        }
        let previous = leases[record.id]
        leases[record.id] = Lease(token: token)
        let wasLost = lost.remove(record.id) != nil
        leaseChecked.insert(record.id)
        let forgotten = agents.filter { $0.key.run == record.id }
        for key in forgotten.keys { agents[key] = nil }
        undo.append { [unowned self] in
            leases[record.id] = previous
            if wasLost { lost.insert(record.id) }
            for (key, value) in forgotten { agents[key] = value }
        }
        return existing != nil
    }

    /// Durable messages to names the blueprint no longer has: nobody will handle them, so they become dead letters.
    private func setAsideOrphans(_ record: RunRecord, time: Int64) throws {
        let known = Set(record.agents)
        let find = try connection.statement("SELECT DISTINCT recipient FROM messages WHERE run_id = ? AND consumed_txn IS NULL")
        try find.bind(record.id.rawValue, at: 1)
        var orphans: [String] = []
        while try find.step() {
            if let name = find.text(0), !known.contains(name) { orphans.append(name) }
        }
        find.reset()
        for name in orphans {
            try connection.statement(
                """
                INSERT INTO dead_letters (run_id, agent, payload, error, failures, created_at)
                SELECT run_id, recipient, payload, ?, 0, ? FROM messages
                WHERE run_id = ? AND recipient = ? AND consumed_txn IS NULL ORDER BY id
                """
            ).run(
                .text("blueprint '\(record.blueprint)' has no agent '\(name)' any more; the message was set aside when run \(record.id) resumed."),
                .integer(time), .text(record.id.rawValue), .text(name)
            )
            try connection.statement(
                "UPDATE messages SET consumed_txn = ? WHERE run_id = ? AND recipient = ? AND consumed_txn IS NULL"
            ).run(.integer(try currentTransaction(record.id)), .text(record.id.rawValue), .text(name))
        }
    }

    private func isAlive(pid owner: Int64, host ownerHost: String?, heartbeat: Int64, now: Int64) -> Bool {
        if ownerHost == host, owner == pid { return true }  // another Run of this very process
        return Self.isAlive(pid: owner, host: ownerHost, heartbeat: heartbeat, now: now, timeout: leaseTimeout)
    }

    /// Why a run cannot be attached (see ``OwnerLiveness/heldElsewhere(_:pid:host:silence:timeout:)``).
    static func heldElsewhere(_ run: RunID, pid: Int64, host: String?, heartbeat: Int64, now: Int64, timeout: Int64) -> TroupeError {
        OwnerLiveness.heldElsewhere(run, pid: pid, host: host, silence: now - heartbeat, timeout: timeout)
    }

    static func isAlive(pid owner: Int64, host ownerHost: String?, heartbeat: Int64, now: Int64, timeout: Int64) -> Bool {
        OwnerLiveness.isAlive(pid: owner, host: ownerHost, silence: now - heartbeat, timeout: timeout)
    }

    /// This machine's host name.
    static var localHost: String { OwnerLiveness.localHost }

    static func json(_ parameters: [String: String]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return (try? encoder.encode(parameters)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    func detach(_ run: RunID, outcome: RunOutcome, error: String?) throws {
        guard let lease = leases[run] else {
            lost.remove(run)
            return
        }
        let time = now()
        try connection.statement(
            """
            UPDATE runs SET status = ?, error = ?, ended_at = ?, updated_at = ?, owner_pid = NULL, heartbeat_at = NULL
            WHERE id = ? AND lease_token = ?
            """
        ).run(.text(outcome.rawValue), .text(error), .integer(time), .integer(time), .text(run.rawValue), .integer(lease.token))
        leases[run] = nil
        let marked = consumedByAgent.filter { $0.key.run == run }
        for agent in marked.keys { consumedByAgent[agent] = nil }
        undo.append { [unowned self] in
            leases[run] = lease
            consumedByAgent.merge(marked) { current, _ in current }
        }
    }

    // MARK: Agents

    func claim(_ agent: AgentID, type: String, durability: Durability) throws -> Claim {
        try claim([ClaimRequest(agent: agent, type: type, durability: durability, incarnation: 0)])[0]
    }

    /// Claims the agents, in the current transaction: upsert their rows (new epochs; one statement per kind of
    /// agent), then three set-based statements per run: read each agent's latest checkpoint, adopt the durable messages accepted
    /// under an older lease, read the recorded steps (the first and the last only for rows that existed before: a
    /// row the claim creates has no history). Returns the claims in the order of `requests` (which name distinct agents).
    ///
    /// The latest checkpoint is read by the row id its head records (``CheckpointChains``); it must be the agent's and
    /// carry the head's sequence. A damaged page that would hand back an older state is refused instead, and so is a
    /// stale page of heads, when the run is attached (its heads must add up to the sum its commits recorded).
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

    /// What one upsert statement of a claim shares: the agents' type and durability.
    private struct ClaimKind: Hashable {
        let type: String
        let durability: Durability
    }

    /// Claims agents of one run; returns (position in `requests`, claim) pairs.
    private func claim(_ run: RunID, _ requests: [ClaimRequest]) throws -> [(Int, Claim)] {
        struct Claimed {
            var row: Int64
            var epoch: UInt64
            var latest: Checkpoint?
            var pending: [StoredMessage] = []
            var steps: [String: [UInt8]] = [:]
        }
        let position = Dictionary(requests.enumerated().map { ($1.agent.name, $0) }, uniquingKeysWith: { $1 })
        // Rows this claim creates get ids above the largest one now (rowids grow within a transaction): they have
        // no checkpoints or steps to read (deleting a run deletes its agents' checkpoints and steps with it).
        let existingBelow = try connection.scalar("SELECT coalesce(max(id), 0) FROM agents") ?? 0
        let upsert = try prepared(upsertAgents, Self.upsertAgentsSQL)
        let time = now()
        var claimed: [Claimed?] = Array(repeating: nil, count: requests.count)
        var byRow: [Int64: Int] = [:]
        byRow.reserveCapacity(requests.count)
        // One statement per kind of agent (a tree has a handful), each over the names of that kind.
        var kinds: [ClaimKind: [String]] = [:]
        for request in requests {
            kinds[ClaimKind(type: request.type, durability: request.durability), default: []].append(request.agent.name)
        }
        for (kind, names) in kinds {
            try upsert.bind([.text(run.rawValue), .text(kind.type), .text(kind.durability.description), .integer(time), .text(Self.json(names))])
            defer { upsert.reset() }
            while try upsert.step() {
                guard let name = upsert.text(1), let index = position[name] else { continue }
                claimed[index] = Claimed(row: upsert.int64(0), epoch: UInt64(upsert.int64(2)))
                byRow[upsert.int64(0)] = index
            }
        }
        guard byRow.count == requests.count else {
            throw SQLiteError(code: SQLITE_ERROR, message: "a claim returned \(byRow.count) rows for \(requests.count) agents", sql: upsert.sql)
        }
        var previous: [(AgentID, AgentRow?)] = []
        previous.reserveCapacity(requests.count)
        for (index, request) in requests.enumerated() {
            let claim = claimed[index]!
            previous.append((request.agent, agents.updateValue(AgentRow(row: claim.row, epoch: claim.epoch), forKey: request.agent)))
        }
        undo.append { [unowned self] in for (agent, row) in previous { agents[agent] = row } }
        let existing = claimed.lazy.map { $0!.row }.filter { $0 <= existingBelow }
        let ids = existing.isEmpty ? nil : Self.json(Array(existing))

        // A row this claim created may have the id of a deleted agent: no head of that agent's may stay.
        if existing.count < requests.count {
            try connection.statement("DELETE FROM checkpoint_heads WHERE agent_id > ?").run(.integer(existingBelow))
        }
        // Read by the row id the agent's head records, and checked against the head: the row must be the agent's and
        // carry the head's sequence.
        if let ids {
            let latest = try connection.statement(
                """
                SELECT j.value, coalesce(h.last_seq, 0), c.agent_id IS j.value, c.seq, c.epoch, c.state_version, c.state
                FROM json_each(?1) j LEFT JOIN checkpoint_heads h ON h.agent_id = j.value
                LEFT JOIN checkpoints c ON c.id = h.last_id
                """
            )
            try latest.bind(ids, at: 1)
            defer { latest.reset() }
            while try latest.step() {
                guard let index = byRow[latest.int64(0)] else { continue }
                let agent = requests[index].agent
                let recorded = latest.int64(1)
                let found = latest.int64(2) == 1 ? latest.int64(3) : 0
                guard found == recorded else {
                    let reads = found != 0 ? found : CheckpointChains.newestSequence(ofAgentRow: latest.int64(0), connection: connection)
                    throw TroupeError.damagedCheckpoints(agent, found: reads, recorded: recorded, path: path)
                }
                guard found != 0 else { continue }
                claimed[index]!.latest = Checkpoint(
                    agent: agent,
                    epoch: UInt64(latest.int64(4)),
                    sequence: UInt64(found),
                    stateVersion: latest.int(5),
                    state: latest.blob(6)
                )
            }
        }
        try noteChains(of: requests, claimed: claimed.map { ($0!.row, Int64($0!.latest?.sequence ?? 0)) }, ids: ids)

        // Messages accepted under an older lease (by a process that died, or requeued by an operator) are adopted by
        // this lease and returned, once: adoption is what marks them returned, in the same transaction.
        if let lease = leases[run] {
            let adopt = try connection.statement(
                """
                UPDATE messages SET lease = ?1 WHERE run_id = ?2 AND recipient IN (SELECT value FROM json_each(?3))
                AND lease < ?1 AND consumed_txn IS NULL RETURNING id, recipient, sender, payload, trace
                """
            )
            try adopt.bind([.integer(lease.token), .text(run.rawValue), .text(Self.json(requests.map(\.agent.name)))])
            while try adopt.step() {
                guard let recipient = adopt.text(1), let index = position[recipient] else { continue }
                claimed[index]!.pending.append(
                    StoredMessage(
                        id: adopt.int64(0), recipient: recipient, sender: adopt.text(2), payload: adopt.blob(3), trace: adopt.text(4)
                    )
                )
            }
            adopt.reset()
        }
        if let ids {
            let recorded = try connection.statement(
                "SELECT agent_id, key, result FROM steps WHERE agent_id IN (SELECT value FROM json_each(?))"
            )
            try recorded.bind(ids, at: 1)
            while try recorded.step() {
                guard let index = byRow[recorded.int64(0)] else { continue }
                if claimed[index]!.steps.isEmpty { agents[requests[index].agent]?.mayHaveSteps = true }
                claimed[index]!.steps[recorded.text(1) ?? ""] = recorded.blob(2)
            }
            recorded.reset()
        }
        return claimed.enumerated().map { index, claim in
            let claim = claim!
            return (index, Claim(epoch: claim.epoch, latest: claim.latest, pending: claim.pending.sorted { $0.id < $1.id }, steps: claim.steps))
        }
    }

    /// Notes the kept checkpoints of the agents just claimed (row, latest sequence; in the order of `requests`), so that
    /// their first commits need no read: none for rows the claim created, and for the others (`ids`, a JSON array of
    /// their rows) what one walk along all their chains finds.
    private func noteChains(of requests: [ClaimRequest], claimed: [(row: Int64, sequence: Int64)], ids: String?) throws {
        var kept: [Int64: Deque<Int64>] = [:]
        if let ids {
            // Joins along the chains, as deep as retention: a recursive walk cost 1 µs a row, four times as much.
            // A chain that goes on past it (retention was larger when it was written) is walked whole, on its own.
            let depth = min(retention, CheckpointChains.joinedDepth)
            let walk = try connection.statement(CheckpointChains.joined(depth: depth, of: "SELECT value FROM json_each(?1)"))
            defer { walk.reset() }
            try walk.bind(ids, at: 1)
            var longer: [Int64] = []
            while try walk.step() {
                let agent = walk.int64(0)
                var chain = Deque<Int64>()
                for level in 0..<depth where !walk.isNull(Int32(1 + level)) { chain.prepend(walk.int64(Int32(1 + level))) }
                kept[agent] = chain
                if walk.int64(Int32(1 + depth)) != 0 { longer.append(agent) }
            }
            for agent in longer {
                let whole = try connection.statement(CheckpointChains.kept(of: "?1") + " SELECT id FROM kept ORDER BY depth DESC")
                defer { whole.reset() }
                try whole.bind(agent, at: 1)
                var chain = Deque<Int64>()
                while try whole.step() { chain.append(whole.int64(0)) }
                kept[agent] = chain
            }
        }
        for (request, claim) in zip(requests, claimed) {
            guard let index = agents.index(forKey: request.agent) else { continue }
            agents.values[index].chain = Chain(ids: kept[claim.row] ?? [], lastSequence: claim.sequence, generation: chainGeneration)
        }
    }

    /// A JSON array of strings, to hand a set of values to one statement through `json_each`. Written by hand, as
    /// bytes: `JSONEncoder` took most of a 100,000-agent claim's time.
    private static func json(_ values: [String]) -> String {
        var out: [UInt8] = [UInt8(ascii: "[")]
        for (index, value) in values.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            appendJSON(value, to: &out)
        }
        out.append(UInt8(ascii: "]"))
        return String(decoding: out, as: UTF8.self)
    }

    private static func json(_ values: [Int64]) -> String {
        "[" + values.map(String.init).joined(separator: ",") + "]"
    }

    /// Appends `value` as a JSON string: quotes, backslashes and control characters escaped (UTF-8 passes as is).
    private static func appendJSON(_ value: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                out.append(UInt8(ascii: "\\"))
                out.append(byte)
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out += Array("\\u00".utf8)
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0xF)])
            default:
                out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    func commit(_ commit: Commit) throws -> [Int64] {
        try checkLease(commit.run)
        let time = now()
        if let agent = commit.agent {
            // One lookup, and no copy of the row: its chain is changed in place below.
            guard let index = agents.index(forKey: agent), agents.values[index].epoch == commit.epoch else {
                throw TroupeError.fenced(agent, epoch: commit.epoch, current: agents[agent]?.epoch ?? 0)
            }
            let row = agents.values[index].row
            if let checkpoint = commit.checkpoint {
                let sequence = Int64(checkpoint.sequence)
                // The chain is read before anything is written: a refusal below fails this commit alone.
                let (lastSequence, previous) = try readChain(at: index)
                guard sequence > lastSequence else {
                    throw TroupeError(
                        .storage,
                        "checkpoint #\(sequence) of '\(agent)' does not follow #\(lastSequence), the one it "
                            + "committed last: a store keeps an agent's checkpoints in the order of their sequences. "
                            + "Nothing of this commit was written."
                    )
                }
                // Written with the batch's other checkpoints (``flushCheckpoints()``); everything this commit
                // decides is decided here.
                let id = try takeCheckpointID()
                pendingCheckpoints.append(
                    PendingCheckpoint(
                        id: id,
                        agent: row,
                        sequence: sequence,
                        epoch: Int64(commit.epoch),
                        stateVersion: checkpoint.stateVersion,
                        createdAt: time,
                        state: checkpoint.state,
                        transaction: try currentTransaction(commit.run),
                        previous: previous
                    )
                )
                growHeadSum(of: commit.run, by: sequence - lastSequence)
                agents.values[index].chain!.ids.append(id)
                agents.values[index].chain!.lastSequence = sequence
                // Retention: each checkpoint drops the oldest kept one once there are more than `retention` (one row a
                // commit, by row id).
                if agents.values[index].chain!.ids.count > retention {
                    while agents.values[index].chain!.ids.count > retention {
                        pendingPrunes.append((agents.values[index].chain!.ids.removeFirst(), row))
                    }
                    // Its oldest kept checkpoint is past its first now: what it consumed before that no fork can need
                    // (looked at every `retention` commits: a lookup of what the agent marked, and a query).
                    if sequence % Int64(retention) == 0, let oldest = agents.values[index].chain!.ids.first {
                        try sweepConsumed(by: agent, oldest: oldest, run: commit.run)
                    }
                }
                if !inTransaction { try flushCheckpoints() }
            }
            if agents.values[index].mayHaveSteps {
                for scope in commit.finishedSteps { try forgetSteps(of: row, scope: scope) }
            }
            if !commit.consumed.isEmpty {
                // Marked, not deleted: a fork at an earlier cut finds it in flight (swept with old checkpoints).
                let consume = try prepared(consumeMessage, Self.consumeMessageSQL)
                let number = try currentTransaction(commit.run)
                for id in commit.consumed {
                    try consume.bind(number, at: 1)
                    try consume.bind(id, at: 2)
                    try consume.execute()
                }
                consumedByAgent[agent, default: []].append((number, commit.consumed))
                undo.append { [unowned self] in _ = consumedByAgent[agent]?.popLast() }
            }
        }
        guard !commit.sent.isEmpty else { return [] }
        let insert = try prepared(insertMessage, Self.insertMessageSQL)
        let token = leases[commit.run]?.token ?? 0
        let number = try currentTransaction(commit.run)
        var ids: [Int64] = []
        ids.reserveCapacity(commit.sent.count)
        for message in commit.sent {
            try insert.bind(commit.run.rawValue, at: 1)
            try insert.bind(message.recipient, at: 2)
            try insert.bind(commit.agent?.name, at: 3)
            try insert.bind(time, at: 4)
            try insert.bind(token, at: 6)
            try insert.bind(number, at: 7)
            try insert.bind(message.trace, at: 8)
            try insert.execute(binding: message.payload, at: 5)
            ids.append(connection.lastInsertRowID)
        }
        return ids
    }

    /// Deletes the consumed messages that no fork can need (consumed before their recipient's oldest kept
    /// checkpoint, once that is past #1): of run `?1`, or of every run when it is NULL. The chains walked are those of
    /// agents with consumed messages only; then one scan of the messages (`CROSS JOIN` keeps them the outer loop: each
    /// looks its recipient's oldest checkpoint up in the chains walked). Run when a run is attached (for what earlier
    /// processes marked) and by `troupe prune`.
    static let sweepConsumedSQL = CheckpointChains.kept(
        of: """
            SELECT a.id FROM (SELECT DISTINCT run_id, recipient FROM messages WHERE consumed_txn IS NOT NULL
            AND (?1 IS NULL OR run_id = ?1)) m JOIN agents a ON a.run_id = m.run_id AND a.name = m.recipient
            """
    ) + """
        , oldest AS MATERIALIZED (SELECT agent, min(seq) AS seq, txn FROM kept GROUP BY agent)
        DELETE FROM messages WHERE id IN (
            SELECT m.id FROM messages m CROSS JOIN agents a ON a.run_id = m.run_id AND a.name = m.recipient
            CROSS JOIN oldest o ON o.agent = a.id
            WHERE m.consumed_txn IS NOT NULL AND (?1 IS NULL OR m.run_id = ?1) AND o.seq > 1 AND m.consumed_txn < o.txn
        )
        """

    private func sweepConsumed(of run: RunID) throws {
        try connection.statement(Self.sweepConsumedSQL).run(.text(run.rawValue))
    }

    /// Deletes the messages this process marked consumed by `agent` before its oldest kept checkpoint (row id `oldest`).
    private func sweepConsumed(by agent: AgentID, oldest row: Int64, run: RunID) throws {
        guard let marked = consumedByAgent[agent], !marked.isEmpty else { return }
        let since: Int64
        if let firstPending = pendingCheckpoints.first?.id, row >= firstPending {
            // Not inserted yet: this transaction wrote it.
            since = try currentTransaction(run)
        } else {
            let oldest = try prepared(oldestKept, Self.oldestKeptSQL)
            try oldest.bind(row, at: 1)
            guard try oldest.step() else {
                oldest.reset()
                return
            }
            since = oldest.int64(0)
            oldest.reset()
        }
        let done = marked.prefix { $0.transaction < since }
        guard !done.isEmpty else { return }
        let delete = try prepared(deleteMessage, Self.deleteMessageSQL)
        for id in done.flatMap(\.ids) {
            try delete.bind(id, at: 1)
            try delete.execute()
        }
        consumedByAgent[agent] = Array(marked.dropFirst(done.count))
        undo.append { [unowned self] in consumedByAgent[agent] = marked }
    }

    func recordStep(_ agent: AgentID, epoch: UInt64, key: String, result: [UInt8]) throws {
        try checkLease(agent.run)
        guard let row = agents[agent], row.epoch == epoch else {
            throw TroupeError.fenced(agent, epoch: epoch, current: agents[agent]?.epoch ?? 0)
        }
        // Set before the insert and never undone: a rolled-back step leaves the flag on, which only costs deletes.
        if !row.mayHaveSteps { agents[agent]?.mayHaveSteps = true }
        try connection.statement("INSERT OR REPLACE INTO steps (agent_id, key, result, created_at) VALUES (?, ?, ?, ?)")
            .run(.integer(row.row), .text(key), .blob(result), .integer(now()))
    }

    /// Deletes agent `row`'s steps filed under `scope` (a unit of work): their keys are "SCOPE/NAME#N", so the range
    /// [SCOPE/, SCOPE0) holds exactly them ("0" follows "/").
    private func forgetSteps(of row: Int64, scope: String) throws {
        try prepared(deleteSteps, Self.deleteStepsSQL).run(.integer(row), .text(scope + "/"), .text(scope + "0"))
    }

    func deadLetter(_ letter: DeadLetter) throws {
        try checkLease(letter.agent.run)
        try connection.statement(
            "INSERT INTO dead_letters (run_id, agent, payload, error, failures, created_at) VALUES (?, ?, ?, ?, ?, ?)"
        ).run(.text(letter.agent.run.rawValue), .text(letter.agent.name), .blob(letter.message), .text(letter.error), .integer(Int64(letter.failures)), .integer(now()))
        if let id = letter.messageID {
            try prepared(consumeMessage, Self.consumeMessageSQL)
                .run(.integer(try currentTransaction(letter.agent.run)), .integer(id))
            // The message's unit of work ends here: its recorded steps must never be replayed to anything else.
            if let row = agents[letter.agent] {
                try forgetSteps(of: row.row, scope: "m\(id)")
            } else {
                try connection.statement(
                    """
                    DELETE FROM steps WHERE agent_id = (SELECT id FROM agents WHERE run_id = ? AND name = ?)
                    AND key >= ? AND key < ?
                    """
                ).run(.text(letter.agent.run.rawValue), .text(letter.agent.name), .text("m\(id)/"), .text("m\(id)0"))
            }
        }
    }

    // MARK: Operators

    /// Moves dead letters back into their agents' durable inboxes. Returns the agents they went to.
    func requeue(_ run: RunID, ids: [Int64]?) throws -> [String] {
        let select = try connection.statement(
            ids == nil
                ? "SELECT id, agent, payload FROM dead_letters WHERE run_id = ? ORDER BY id"
                : "SELECT id, agent, payload FROM dead_letters WHERE run_id = ? AND id = ?"
        )
        var letters: [(id: Int64, agent: String, payload: [UInt8])] = []
        for id in ids ?? [0] {
            try select.bind(run.rawValue, at: 1)
            if ids != nil { try select.bind(id, at: 2) }
            while try select.step() { letters.append((select.int64(0), select.text(1) ?? "", select.blob(2))) }
            select.reset()
        }
        let time = now()
        var agents: [String] = []
        for letter in letters {
            // Lease 0: accepted by no owner, so the agent's next claim (a restart, or the next resume) adopts it.
            try connection.statement(
                "INSERT INTO messages (run_id, recipient, sender, created_at, payload, lease, sent_txn) VALUES (?, ?, NULL, ?, ?, 0, ?)"
            ).run(.text(run.rawValue), .text(letter.agent), .integer(time), .blob(letter.payload), .integer(try currentTransaction(run)))
            try connection.statement("DELETE FROM dead_letters WHERE id = ?").run(.integer(letter.id))
            agents.append(letter.agent)
        }
        return agents
    }

    // MARK: Events

    /// Appends events to the log (inside the caller's transaction). A failure to write one skips it.
    func record(_ events: [Event]) throws {
        for event in events { try record(event) }
    }

    func record(_ event: Event) throws {
        guard leases[event.run] != nil else { return }
        let time = Int64(event.time.timeIntervalSince1970 * 1000)
        let insert = try prepared(insertEvent, "INSERT INTO events (run_id, agent, incarnation, kind, detail, created_at) VALUES (?, ?, ?, ?, ?, ?)")
        try insert.bind(event.run.rawValue, at: 1)
        try insert.bind(event.name, at: 2)
        try insert.bind(Int64(event.incarnation), at: 3)
        try insert.bind(event.kind.name, at: 4)
        try insert.bind(event.kind.detail, at: 5)
        try insert.bind(time, at: 6)
        try insert.execute()
        // A persisting agent's claim, which precedes its start, already set its row running.
        let claimed = if case .started = event.kind { agents[AgentID(run: event.run, name: event.name)] != nil } else { false }
        if let status = event.kind.impliedStatus, !claimed {
            try prepared(updateStatus, Self.updateStatusSQL)
                .run(.text(status.rawValue), .text(event.kind.error), .integer(time), .text(event.run.rawValue), .text(event.name))
        }
        if case .restarting(_, let restarts) = event.kind {
            try connection.statement("UPDATE agents SET restarts = ?, updated_at = ? WHERE run_id = ? AND name = ?")
                .run(.integer(Int64(restarts)), .integer(time), .text(event.run.rawValue), .text(event.name))
        }
        if case .logged = event.kind {
            logLines[event.run, default: 0] += 1
            if logLines[event.run]! % LogRetention.every == 0 {
                // The newest lines stay; older ones go.
                try connection.statement(
                    """
                    DELETE FROM events WHERE run_id = ?1 AND kind = 'log' AND seq <= (
                        SELECT seq FROM events WHERE run_id = ?1 AND kind = 'log' ORDER BY seq DESC LIMIT 1 OFFSET ?2)
                    """
                ).run(.text(event.run.rawValue), .integer(Int64(LogRetention.lines)))
            }
        }
    }
}

/// Milliseconds since 1970, UTC.
func now() -> Int64 {
    var time = timespec()
    clock_gettime(CLOCK_REALTIME, &time)
    return Int64(time.tv_sec) * 1000 + Int64(time.tv_nsec) / 1_000_000
}
