import FoundationEssentials
public import Troupe

// What operators ask of a database: the runs, their agents and trees, checkpoints, dead letters, the command queue,
// forks and pruning. The CLI is a thin layer over these.

extension SQLiteStore {
    /// A run as `troupe ps` shows it.
    public struct RunSummary: Sendable, Codable, Hashable {
        public var id: String
        public var blueprint: String
        /// `running`, `stopped`, `failed`, `completed` or `cancelled`; a `running` run whose owner is gone
        /// (``ownerAlive`` false) crashed and can be resumed.
        public var status: String
        public var parameters: [String: String]
        /// Milliseconds since 1970.
        public var createdAt: Int64
        public var endedAt: Int64?
        public var error: String?
        public var ownerPID: Int64?
        public var ownerHost: String?
        public var heartbeatAt: Int64?
        /// Whether the owning process is alive (same host: the process exists; other hosts: a recent heartbeat).
        public var ownerAlive: Bool
        public var agents: Int
        public var restarts: Int
    }

    /// An agent's row, joined with its latest checkpoint and the durable messages waiting for it.
    public struct AgentSummary: Sendable, Codable, Hashable {
        public var name: String
        public var type: String
        public var durability: String
        public var status: String
        public var epoch: Int64
        public var restarts: Int
        public var lastError: String?
        public var lastCheckpoint: Int64?
        public var lastCheckpointAt: Int64?
        public var pendingMessages: Int
    }

    /// One retained checkpoint, without its state.
    public struct CheckpointRecord: Sendable, Codable, Hashable {
        public var sequence: Int64
        public var epoch: Int64
        public var stateVersion: Int
        public var createdAt: Int64
        public var bytes: Int
    }

    /// A dead letter as `troupe dead-letters` lists it.
    public struct DeadLetterRecord: Sendable, Codable, Hashable {
        public var id: Int64
        public var agent: String
        public var error: String
        public var failures: Int
        public var createdAt: Int64
        public var bytes: Int
    }

    /// An operator's command, queued for the process driving a run.
    public struct OperatorCommand: Sendable, Codable, Hashable {
        public var id: Int64
        /// `cancel`, `restart`, `pause`, `unpause` or `requeue`.
        public var verb: String
        public var agent: String?
        public var arguments: [String: String]
        public var createdAt: Int64
        public var appliedAt: Int64?
        public var result: String?
    }

    private static let runColumns = """
        r.id, r.blueprint, r.status, r.parameters, r.created_at, r.ended_at, r.error, r.owner_pid, r.owner_host,
        r.heartbeat_at, (SELECT count(*) FROM agents a WHERE a.run_id = r.id),
        (SELECT coalesce(sum(a.restarts), 0) FROM agents a WHERE a.run_id = r.id)
        """

    private static func runSummary(_ row: Statement, heartbeatTimeout: Int64) -> RunSummary {
        let parameters = (try? JSONDecoder().decode([String: String].self, from: Data((row.text(3) ?? "{}").utf8))) ?? [:]
        let pid = row.isNull(7) ? nil : row.int64(7)
        let heartbeat = row.isNull(9) ? nil : row.int64(9)
        var alive = false
        if let pid, let heartbeat {
            alive = WriterSession.isAlive(
                pid: pid, host: row.text(8), heartbeat: heartbeat, now: now(), timeout: heartbeatTimeout,
                localHost: WriterSession.localHost
            )
        }
        return RunSummary(
            id: row.text(0) ?? "", blueprint: row.text(1) ?? "", status: row.text(2) ?? "", parameters: parameters,
            createdAt: row.int64(4), endedAt: row.isNull(5) ? nil : row.int64(5), error: row.text(6),
            ownerPID: pid, ownerHost: row.text(8), heartbeatAt: heartbeat, ownerAlive: alive,
            agents: row.int(10), restarts: row.int(11)
        )
    }

    /// Every run, newest first.
    public func runs() async throws -> [RunSummary] {
        let timeout = heartbeatTimeout
        return try await read { connection in
            let statement = try connection.statement("SELECT \(Self.runColumns) FROM runs r ORDER BY r.created_at DESC, r.id")
            defer { statement.reset() }
            var result: [RunSummary] = []
            while try statement.step() { result.append(Self.runSummary(statement, heartbeatTimeout: timeout)) }
            return result
        }
    }

    /// One run.
    ///
    /// - Throws: ``TroupeError/Code/unknownRun`` if the database has no such run.
    public func run(_ id: RunID) async throws -> RunSummary {
        let timeout = heartbeatTimeout
        let path = self.path
        return try await read { connection in
            let statement = try connection.statement("SELECT \(Self.runColumns) FROM runs r WHERE r.id = ?")
            defer { statement.reset() }
            try statement.bind(id.rawValue, at: 1)
            guard try statement.step() else { throw Self.unknownRun(id, path: path) }
            return Self.runSummary(statement, heartbeatTimeout: timeout)
        }
    }

    static func unknownRun(_ id: RunID, path: String) -> TroupeError {
        TroupeError(
            .unknownRun,
            "no run '\(id)' in '\(path)'. `troupe ps` lists the runs; pass --database if it is in another file."
        )
    }

    /// The agents of a run, in name order.
    public func agents(of run: RunID) async throws -> [AgentSummary] {
        try await read { connection in
            let statement = try connection.statement(
                """
                SELECT a.name, a.type, a.durability, a.status, a.epoch, a.restarts, a.last_error,
                (SELECT max(seq) FROM checkpoints c WHERE c.agent_id = a.id),
                (SELECT created_at FROM checkpoints c WHERE c.agent_id = a.id ORDER BY seq DESC LIMIT 1),
                (SELECT count(*) FROM messages m WHERE m.run_id = a.run_id AND m.recipient = a.name)
                FROM agents a WHERE a.run_id = ? ORDER BY a.name
                """
            )
            defer { statement.reset() }
            try statement.bind(run.rawValue, at: 1)
            var result: [AgentSummary] = []
            while try statement.step() {
                result.append(
                    AgentSummary(
                        name: statement.text(0) ?? "", type: statement.text(1) ?? "", durability: statement.text(2) ?? "",
                        status: statement.text(3) ?? "", epoch: statement.int64(4), restarts: statement.int(5),
                        lastError: statement.text(6), lastCheckpoint: statement.isNull(7) ? nil : statement.int64(7),
                        lastCheckpointAt: statement.isNull(8) ? nil : statement.int64(8), pendingMessages: statement.int(9)
                    )
                )
            }
            return result
        }
    }

    /// The last tree snapshot the driving process wrote (JSON), and when.
    public func treeSnapshot(of run: RunID) async throws -> (json: String, at: Int64)? {
        try await read { connection in
            let statement = try connection.statement("SELECT tree, tree_at FROM runs WHERE id = ? AND tree IS NOT NULL")
            defer { statement.reset() }
            try statement.bind(run.rawValue, at: 1)
            guard try statement.step() else { return nil }
            return (statement.text(0) ?? "[]", statement.int64(1))
        }
    }

    /// Records the live tree of a run this process drives (see ``treeSnapshot(of:)``).
    public func saveTreeSnapshot(of run: RunID, json: String) async throws {
        try await writer.perform { session in
            try session.connection.statement("UPDATE runs SET tree = ?, tree_at = ? WHERE id = ?")
                .run(.text(json), .integer(now()), .text(run.rawValue))
        }
    }

    /// Sets the status operators see for a run this process drives (`paused`, `running`).
    public func setRunStatus(_ run: RunID, _ status: String) async throws {
        try await writer.perform { session in
            try session.checkLease(run)
            try session.connection.statement("UPDATE runs SET status = ?, updated_at = ? WHERE id = ?")
                .run(.text(status), .integer(now()), .text(run.rawValue))
        }
    }

    /// The retained checkpoints of an agent, oldest first, without their states.
    public func checkpointHistory(of agent: AgentID) async throws -> [CheckpointRecord] {
        try await read { connection in
            let statement = try connection.statement(
                """
                SELECT c.seq, c.epoch, c.state_version, c.created_at, length(c.state) FROM checkpoints c
                JOIN agents a ON a.id = c.agent_id WHERE a.run_id = ? AND a.name = ? ORDER BY c.seq
                """
            )
            defer { statement.reset() }
            try statement.bind([.text(agent.run.rawValue), .text(agent.name)])
            var result: [CheckpointRecord] = []
            while try statement.step() {
                result.append(
                    CheckpointRecord(
                        sequence: statement.int64(0), epoch: statement.int64(1), stateVersion: statement.int(2),
                        createdAt: statement.int64(3), bytes: statement.int(4)
                    )
                )
            }
            return result
        }
    }

    /// Whether the run has an agent of that name.
    public func hasAgent(_ agent: AgentID) async throws -> Bool {
        try await read { connection in
            try connection.scalar("SELECT 1 FROM agents WHERE run_id = ? AND name = ?", .text(agent.run.rawValue), .text(agent.name)) != nil
        }
    }

    /// The dead letters of a run, oldest first, without their messages.
    public func deadLetterRecords(of run: RunID) async throws -> [DeadLetterRecord] {
        try await read { connection in
            let statement = try connection.statement(
                "SELECT id, agent, error, failures, created_at, length(payload) FROM dead_letters WHERE run_id = ? ORDER BY id"
            )
            defer { statement.reset() }
            try statement.bind(run.rawValue, at: 1)
            var result: [DeadLetterRecord] = []
            while try statement.step() {
                result.append(
                    DeadLetterRecord(
                        id: statement.int64(0), agent: statement.text(1) ?? "", error: statement.text(2) ?? "",
                        failures: statement.int(3), createdAt: statement.int64(4), bytes: statement.int(5)
                    )
                )
            }
            return result
        }
    }

    /// Moves dead letters (all of the run's, or those with `ids`) back into their agents' durable inboxes.
    ///
    /// When this process drives the run, each agent's next start picks them up; otherwise the next resume does.
    /// - Returns: The agents the messages went back to, one entry per message.
    public func requeueDeadLetters(of run: RunID, ids: [Int64]? = nil) async throws -> [String] {
        try await writer.perform { session in try session.requeue(run, ids: ids) }
    }

    /// Deletes dead letters (all of the run's, or those with `ids`). Returns how many.
    public func purgeDeadLetters(of run: RunID, ids: [Int64]? = nil) async throws -> Int {
        try await writer.perform { session in
            let connection = session.connection
            guard let ids else {
                try connection.statement("DELETE FROM dead_letters WHERE run_id = ?").run(.text(run.rawValue))
                return connection.changes
            }
            var count = 0
            for id in ids {
                try connection.statement("DELETE FROM dead_letters WHERE run_id = ? AND id = ?").run(.text(run.rawValue), .integer(id))
                count += connection.changes
            }
            return count
        }
    }

    // MARK: The command queue

    /// Queues a command for the process driving `run` (or for the next resume). Returns its id.
    public func enqueueCommand(_ run: RunID, verb: String, agent: String?, arguments: [String: String] = [:]) async throws -> Int64 {
        try await writer.perform { session in
            let connection = session.connection
            try connection.statement("INSERT INTO commands (run_id, verb, agent, arguments, created_at) VALUES (?, ?, ?, ?, ?)")
                .run(.text(run.rawValue), .text(verb), .text(agent), .text(WriterSession.json(arguments)), .integer(now()))
            return connection.lastInsertRowID
        }
    }

    /// Commands for `run` not applied yet, oldest first.
    public func pendingCommands(of run: RunID) async throws -> [OperatorCommand] {
        try await commands(of: run, pendingOnly: true)
    }

    /// Every command of `run`, oldest first.
    public func commands(of run: RunID, pendingOnly: Bool = false) async throws -> [OperatorCommand] {
        try await read { connection in
            let statement = try connection.statement(
                """
                SELECT id, verb, agent, arguments, created_at, applied_at, result FROM commands
                WHERE run_id = ? AND (? = 0 OR applied_at IS NULL) ORDER BY id
                """
            )
            defer { statement.reset() }
            try statement.bind([.text(run.rawValue), .integer(pendingOnly ? 1 : 0)])
            var result: [OperatorCommand] = []
            while try statement.step() {
                let arguments = (try? JSONDecoder().decode([String: String].self, from: Data((statement.text(3) ?? "{}").utf8))) ?? [:]
                result.append(
                    OperatorCommand(
                        id: statement.int64(0), verb: statement.text(1) ?? "", agent: statement.text(2), arguments: arguments,
                        createdAt: statement.int64(4), appliedAt: statement.isNull(5) ? nil : statement.int64(5),
                        result: statement.text(6)
                    )
                )
            }
            return result
        }
    }

    /// Marks a command applied, with what happened.
    public func completeCommand(_ id: Int64, result: String) async throws {
        try await writer.perform { session in
            try session.connection.statement("UPDATE commands SET applied_at = ?, result = ? WHERE id = ?")
                .run(.integer(now()), .text(result), .integer(id))
        }
    }

    /// A cheap number that changes whenever another connection commits (`PRAGMA data_version`): a live run
    /// polls it to notice operators' commands without querying the command table each time.
    public func dataVersion() async throws -> Int64 {
        try await read { connection in try connection.scalar("PRAGMA data_version") ?? 0 }
    }

    // MARK: Fork, prune, check

    /// Creates a new run of the same blueprint and parameters whose agents start from their checkpoints as of
    /// checkpoint `sequence` of `agent` (that one exactly; the others, their latest at or before its time).
    /// The original run is untouched; the fork is created stopped, for `troupe resume` to start.
    ///
    /// - Throws: ``TroupeError/Code/unknownRun`` or ``TroupeError/Code/unknownChild`` (no such checkpoint).
    public func fork(_ agent: AgentID, sequence: Int64, as newRun: RunID) async throws {
        let path = self.path
        try await writer.perform { session in
            let connection = session.connection
            let source = agent.run.rawValue
            guard try connection.scalar("SELECT 1 FROM runs WHERE id = ?", .text(source)) != nil else {
                throw SQLiteStore.unknownRun(agent.run, path: path)
            }
            guard
                let time = try connection.scalar(
                    """
                    SELECT c.created_at FROM checkpoints c JOIN agents a ON a.id = c.agent_id
                    WHERE a.run_id = ? AND a.name = ? AND c.seq = ?
                    """,
                    .text(source), .text(agent.name), .integer(sequence)
                )
            else {
                throw TroupeError(
                    .unknownChild,
                    "run \(agent.run) has no checkpoint #\(sequence) of agent '\(agent.name)'. "
                        + "`troupe checkpoints \(agent.run) \(agent.name)` lists the ones kept."
                )
            }
            let stamp = now()
            try connection.statement(
                """
                INSERT INTO runs (id, blueprint, status, parameters, created_at, updated_at, error)
                SELECT ?, blueprint, 'stopped', parameters, ?, ?, ? FROM runs WHERE id = ?
                """
            ).run(
                .text(newRun.rawValue), .integer(stamp), .integer(stamp),
                .text("forked from \(agent.run) at checkpoint #\(sequence) of '\(agent.name)'"), .text(source)
            )
            try connection.statement(
                """
                INSERT INTO agents (run_id, name, type, durability, status, epoch, restarts, updated_at)
                SELECT ?, name, type, durability, 'stopped', epoch, 0, ? FROM agents WHERE run_id = ?
                """
            ).run(.text(newRun.rawValue), .integer(stamp), .text(source))
            // Each agent's checkpoint as of the chosen one's time; the chosen agent's exactly.
            try connection.statement(
                """
                INSERT INTO checkpoints (agent_id, seq, epoch, state_version, created_at, state)
                SELECT n.id, c.seq, c.epoch, c.state_version, c.created_at, c.state
                FROM agents o JOIN agents n ON n.run_id = ? AND n.name = o.name
                JOIN checkpoints c ON c.agent_id = o.id
                WHERE o.run_id = ? AND c.seq = (
                    SELECT max(c2.seq) FROM checkpoints c2 WHERE c2.agent_id = o.id
                    AND (CASE WHEN o.name = ? THEN c2.seq <= ? ELSE c2.created_at <= ? END)
                )
                """
            ).run(.text(newRun.rawValue), .text(source), .text(agent.name), .integer(sequence), .integer(time))
        }
    }

    /// What ``prune(keep:eventsBefore:dryRun:)`` removed (or would remove).
    public struct PruneReport: Sendable, Codable, Hashable {
        public var checkpoints: Int
        public var events: Int
    }

    /// Deletes all but the last `keep` checkpoints of every agent, and events older than `eventsBefore`
    /// (milliseconds since 1970), from runs that no live process drives.
    public func prune(keep: Int, eventsBefore: Int64?, dryRun: Bool) async throws -> PruneReport {
        precondition(keep >= 1, "prune must keep at least one checkpoint per agent")
        return try await write { connection in
            let doomed = """
                FROM checkpoints WHERE id IN (SELECT c.id FROM checkpoints c
                WHERE c.seq <= (SELECT max(seq) FROM checkpoints c2 WHERE c2.agent_id = c.agent_id) - ?)
                """
            let checkpoints = Int(try connection.scalar("SELECT count(*) \(doomed)", .integer(Int64(keep))) ?? 0)
            var events = 0
            if let before = eventsBefore {
                events = Int(try connection.scalar("SELECT count(*) FROM events WHERE created_at < ?", .integer(before)) ?? 0)
                if !dryRun { try connection.statement("DELETE FROM events WHERE created_at < ?").run(.integer(before)) }
            }
            if !dryRun { try connection.statement("DELETE \(doomed)").run(.integer(Int64(keep))) }
            return PruneReport(checkpoints: checkpoints, events: events)
        }
    }

    /// Deletes runs and everything they stored: agents, checkpoints, recorded steps, durable messages, dead
    /// letters, events and commands. All or nothing, in one transaction.
    ///
    /// - Throws: ``TroupeError/Code/unknownRun`` if one of them does not exist, ``TroupeError/Code/leaseHeld`` if
    ///   a live process drives one (checked inside the transaction, so a run resumed meanwhile is not deleted);
    ///   nothing is deleted then.
    public func deleteRuns(_ ids: [RunID]) async throws {
        let timeout = heartbeatTimeout
        let path = self.path
        _ = try await write { connection in
            for id in ids {
                let statement = try connection.statement("SELECT \(Self.runColumns) FROM runs r WHERE r.id = ?")
                try statement.bind(id.rawValue, at: 1)
                guard try statement.step() else {
                    statement.reset()
                    throw Self.unknownRun(id, path: path)
                }
                let run = Self.runSummary(statement, heartbeatTimeout: timeout)
                statement.reset()
                if run.ownerAlive {
                    throw TroupeError(
                        .leaseHeld,
                        "run \(id) is being driven by process \(run.ownerPID ?? 0) on \(run.ownerHost ?? "?"); it was not "
                            + "deleted (nor were the others named). Stop it first (`troupe cancel \(id)`)."
                    )
                }
                let agents = "SELECT id FROM agents WHERE run_id = ?"
                for sql in [
                    "DELETE FROM steps WHERE agent_id IN (\(agents))",
                    "DELETE FROM checkpoints WHERE agent_id IN (\(agents))",
                    "DELETE FROM agents WHERE run_id = ?",
                    "DELETE FROM messages WHERE run_id = ?",
                    "DELETE FROM dead_letters WHERE run_id = ?",
                    "DELETE FROM events WHERE run_id = ?",
                    "DELETE FROM commands WHERE run_id = ?",
                    "DELETE FROM runs WHERE id = ?",
                ] {
                    try connection.statement(sql).run(.text(id.rawValue))
                }
            }
            return ids.count
        }
    }

    /// Runs SQLite's integrity check and reports the migrations applied: `ok` lines mean healthy.
    public func check() async throws -> (integrity: [String], migrations: [String], known: [String]) {
        let known = Migrator.migrations.map(\.name)
        return try await read { connection in
            (
                try connection.texts("PRAGMA integrity_check"),
                try connection.texts("SELECT name FROM troupe_migrations ORDER BY id"),
                known
            )
        }
    }
}
