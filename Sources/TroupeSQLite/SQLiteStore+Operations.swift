public import FoundationEssentials
public import Troupe

// What operators ask of a database — runs, agents, trees, checkpoints, dead letters, forks, pruning — and the
// control queue, behind the engine's ``RunReadModel`` and ``ControlQueue``. The CLI uses nothing else.

extension SQLiteStore: OperatorStore {
    public var location: String { "'\(path)'" }

    static func date(_ milliseconds: Int64) -> Date { Date(timeIntervalSince1970: Double(milliseconds) / 1000) }

    static func milliseconds(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded()) }

    private static let runColumns = """
        r.id, r.blueprint, r.status, r.parameters, r.created_at, r.ended_at, r.error, r.owner_pid, r.owner_host,
        r.heartbeat_at, (SELECT count(*) FROM agents a WHERE a.run_id = r.id),
        (SELECT coalesce(sum(a.restarts), 0) FROM agents a WHERE a.run_id = r.id), r.durability, r.lease_token
        """

    private static func runSummary(_ row: Statement, heartbeatTimeout: Int64) -> RunSummary {
        let parameters = (try? JSONDecoder().decode([String: String].self, from: Data((row.text(3) ?? "{}").utf8))) ?? [:]
        var owner: RunSummary.Owner?
        if !row.isNull(7) {
            let pid = row.int64(7)
            let heartbeat = row.isNull(9) ? nil : row.int64(9)
            let alive = heartbeat.map {
                WriterSession.isAlive(
                    pid: pid, host: row.text(8), heartbeat: $0, now: now(), timeout: heartbeatTimeout
                )
            } ?? false
            owner = RunSummary.Owner(pid: pid, host: row.text(8) ?? "", heartbeatAt: heartbeat.map(date), alive: alive)
        }
        var status = RunStatus(rawValue: row.text(2) ?? "") ?? .failed
        if status.isLive, owner?.alive != true { status = .crashed }
        return RunSummary(
            id: RunID(row.text(0) ?? ""), blueprint: row.text(1) ?? "", status: status,
            durability: row.text(12).flatMap(Durability.init), parameters: parameters,
            createdAt: date(row.int64(4)), endedAt: row.isNull(5) ? nil : date(row.int64(5)), error: row.text(6),
            owner: owner, agents: row.int(10), restarts: row.int(11), lease: row.int64(13)
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
            guard try statement.step() else { throw TroupeError.unknownRun(id, in: "'\(path)'") }
            return Self.runSummary(statement, heartbeatTimeout: timeout)
        }
    }

    /// The agents of a run, in name order.
    public func agents(of run: RunID) async throws -> [AgentSummary] {
        try await read { connection in
            let statement = try connection.statement(
                """
                SELECT a.name, a.type, a.durability, a.status, a.epoch, a.restarts, a.last_error, h.last_seq, c.created_at,
                (SELECT count(*) FROM messages m WHERE m.run_id = a.run_id AND m.recipient = a.name AND m.consumed_txn IS NULL)
                FROM agents a LEFT JOIN checkpoint_heads h ON h.agent_id = a.id LEFT JOIN checkpoints c ON c.id = h.last_id
                WHERE a.run_id = ? ORDER BY a.name
                """
            )
            defer { statement.reset() }
            try statement.bind(run.rawValue, at: 1)
            var result: [AgentSummary] = []
            while try statement.step() {
                result.append(
                    AgentSummary(
                        name: statement.text(0) ?? "", type: statement.text(1) ?? "",
                        durability: statement.text(2).flatMap(Durability.init) ?? .ephemeral,
                        status: AgentStatus(rawValue: statement.text(3) ?? "") ?? .stopped,
                        epoch: UInt64(statement.int64(4)), restarts: statement.int(5), lastError: statement.text(6),
                        lastCheckpoint: statement.isNull(7) ? nil : UInt64(statement.int64(7)),
                        lastCheckpointAt: statement.isNull(8) ? nil : Self.date(statement.int64(8)),
                        pendingMessages: statement.int(9)
                    )
                )
            }
            return result
        }
    }

    public func treeSnapshot(of run: RunID) async throws -> TreeSnapshot? {
        let stored: (String, Int64)? = try await read { connection in
            let statement = try connection.statement("SELECT tree, tree_at FROM run_trees WHERE run_id = ?")
            defer { statement.reset() }
            try statement.bind(run.rawValue, at: 1)
            guard try statement.step() else { return nil }
            return (statement.text(0) ?? "[]", statement.int64(1))
        }
        guard let (json, at) = stored else { return nil }
        return try TreeSnapshot(json: json, at: Self.date(at), run: run, location: location)
    }

    public func publishTree(_ nodes: [TreeNode], of run: RunID) async throws {
        let json = try TreeSnapshot.json(nodes)
        try await writer.perform { session in
            // Its own row: the run's row is updated by every transaction, and SQLite rewrites a row whole.
            try session.connection.statement(
                "INSERT INTO run_trees (run_id, tree, tree_at) VALUES (?, ?, ?) "
                    + "ON CONFLICT (run_id) DO UPDATE SET tree = excluded.tree, tree_at = excluded.tree_at"
            ).run(.text(run.rawValue), .text(json), .integer(now()))
        }
    }

    public func setPaused(_ paused: Bool, run: RunID) async throws {
        try await writer.perform { session in
            try session.checkLease(run)
            try session.connection.statement("UPDATE runs SET status = ?, updated_at = ? WHERE id = ?")
                .run(.text(paused ? "paused" : "running"), .integer(now()), .text(run.rawValue))
        }
    }

    public func checkpointHistory(of agent: AgentID) async throws -> [CheckpointRecord] {
        try await read { [path] connection in
            let statement = try connection.statement(
                CheckpointChains.kept(of: Self.agentRowSQL) + """
                     SELECT c.seq, c.epoch, c.state_version, c.created_at, length(c.state) FROM kept
                    JOIN checkpoints c ON c.id = kept.id ORDER BY kept.seq
                    """
            )
            defer { statement.reset() }
            try statement.bind([.text(agent.run.rawValue), .text(agent.name)])
            var result: [CheckpointRecord] = []
            while try statement.step() {
                result.append(
                    CheckpointRecord(
                        sequence: UInt64(statement.int64(0)), epoch: UInt64(statement.int64(1)),
                        stateVersion: statement.int(2), createdAt: Self.date(statement.int64(3)), bytes: statement.int(4)
                    )
                )
            }
            try Self.checkLatest(of: agent, listed: result.last?.sequence ?? 0, connection: connection, path: path)
            return result
        }
    }

    public func deadLetters(of run: RunID) async throws -> [DeadLetterRecord] {
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
                        failures: statement.int(3), createdAt: Self.date(statement.int64(4)), bytes: statement.int(5)
                    )
                )
            }
            return result
        }
    }

    /// When this process drives the run, each agent's next start picks the messages up; otherwise the next
    /// resume does.
    public func requeueDeadLetters(of run: RunID, ids: [Int64]?) async throws -> [String] {
        try await writer.perform { session in try session.requeue(run, ids: ids) }
    }

    public func purgeDeadLetters(of run: RunID, ids: [Int64]?) async throws -> Int {
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

    // MARK: The control queue

    public func enqueue(_ action: OperatorCommand.Action, for run: RunID, origin: OperatorCommand.Origin?) async throws -> Int64 {
        let path = self.path
        return try await writer.perform { session in
            let connection = session.connection
            guard try connection.scalar("SELECT 1 FROM runs WHERE id = ?", .text(run.rawValue)) != nil else {
                throw TroupeError.unknownRun(run, in: "'\(path)'")
            }
            try connection.statement("INSERT INTO commands (run_id, verb, agent, arguments, created_at) VALUES (?, ?, ?, ?, ?)")
                .run(
                    .text(run.rawValue), .text(action.verb), .text(action.agent), .text(WriterSession.json(action.arguments.merging(origin?.arguments ?? [:]) { kept, _ in kept })),
                    .integer(now())
                )
            return connection.lastInsertRowID
        }
    }

    public func commands(of run: RunID) async throws -> [OperatorCommand] {
        try await commands(of: run, after: 0, pendingOnly: false)
    }

    private func commands(of run: RunID, after: Int64, pendingOnly: Bool) async throws -> [OperatorCommand] {
        try await read { connection in
            let statement = try connection.statement(
                """
                SELECT id, verb, agent, arguments, created_at, applied_at, result, outcome FROM commands
                WHERE run_id = ? AND id > ? AND (? = 0 OR applied_at IS NULL) ORDER BY id
                """
            )
            defer { statement.reset() }
            try statement.bind([.text(run.rawValue), .integer(after), .integer(pendingOnly ? 1 : 0)])
            var result: [OperatorCommand] = []
            while try statement.step() {
                let arguments = (try? JSONDecoder().decode([String: String].self, from: Data((statement.text(3) ?? "{}").utf8)))
                var outcome: OperatorCommand.Result?
                if let message = statement.text(6) {
                    outcome = OperatorCommand.Result(
                        OperatorCommand.Result.Outcome(rawValue: statement.text(7) ?? "") ?? .applied,
                        message
                    )
                }
                let verb = statement.text(1) ?? ""
                result.append(
                    OperatorCommand(
                        id: statement.int64(0),
                        run: run,
                        action: arguments.map { OperatorCommand.Action(verb: verb, agent: statement.text(2), arguments: $0) }
                            ?? .unrecognized(verb: verb, reason: "its arguments are not a JSON object of strings"),
                        origin: arguments.flatMap(OperatorCommand.Origin.init(arguments:)),
                        createdAt: Self.date(statement.int64(4)),
                        appliedAt: statement.isNull(5) ? nil : Self.date(statement.int64(5)),
                        result: outcome
                    )
                )
            }
            return result
        }
    }

    /// Polls the queue every 50 ms, querying it only when `PRAGMA data_version` says another connection wrote.
    public func pendingCommands(of run: RunID) -> AsyncThrowingStream<OperatorCommand, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                var seen: Int64 = -1
                var last: Int64 = 0
                do {
                    while !Task.isCancelled {
                        let version = try await self.dataVersion()
                        if version != seen {
                            seen = version
                            for command in try await self.commands(of: run, after: last, pendingOnly: true) {
                                last = command.id
                                continuation.yield(command)
                            }
                        }
                        try await Task.sleep(for: .milliseconds(50))
                    }
                    continuation.finish()
                } catch is CancellationError {
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    public func complete(_ command: Int64, with result: OperatorCommand.Result) async throws {
        try await writer.perform { session in
            try session.connection.statement("UPDATE commands SET applied_at = ?, result = ?, outcome = ? WHERE id = ?")
                .run(.integer(now()), .text(result.message), .text(result.outcome.rawValue), .integer(command))
        }
    }

    /// A cheap number that changes whenever another connection commits (`PRAGMA data_version`).
    func dataVersion() async throws -> Int64 {
        try await read { connection in try connection.scalar("PRAGMA data_version") ?? 0 }
    }

    // MARK: Fork, prune, check

    /// Creates a new run of the same blueprint and parameters at the cut right after the transaction that wrote
    /// checkpoint `sequence` of `agent`: each agent's latest checkpoint written by a transaction at or before it,
    /// and the durable messages in flight then (sent by then, not consumed by then), which the fork's agents adopt
    /// when it is resumed. The original run is untouched; the fork is created stopped, for `troupe resume` to start.
    ///
    /// - Throws: ``TroupeError/Code/unknownRun``, or ``TroupeError/Code/unknownChild`` (no such checkpoint, one
    ///   written before commits were numbered, or an agent's checkpoint from then was pruned).
    public func fork(_ agent: AgentID, sequence: UInt64, as newRun: RunID) async throws {
        let path = self.path
        // A transaction of its own: a refusal found after the copy rolls the whole fork back.
        _ = try await write { connection in
            let source = agent.run.rawValue
            guard try connection.scalar("SELECT 1 FROM runs WHERE id = ?", .text(source)) != nil else {
                throw TroupeError.unknownRun(agent.run, in: "'\(path)'")
            }
            guard
                let cut = try connection.scalar(
                    CheckpointChains.kept(of: Self.agentRowSQL) + " SELECT txn FROM kept WHERE seq = ?3",
                    .text(source), .text(agent.name), .integer(Int64(sequence))
                )
            else {
                throw TroupeError(
                    .unknownChild,
                    "run \(agent.run) has no checkpoint #\(sequence) of agent '\(agent.name)'. "
                        + "`troupe checkpoints \(agent.run) \(agent.name)` lists the ones kept."
                )
            }
            guard cut > 0 else {
                throw TroupeError(
                    .unknownChild,
                    "checkpoint #\(sequence) of '\(agent.name)' in run \(agent.run) was written before this database "
                        + "recorded the order of its commits, so no consistent fork can start from it. Fork from a "
                        + "checkpoint written since (`troupe checkpoints \(agent.run) \(agent.name)`)."
                )
            }
            let stamp = now()
            try connection.statement(
                """
                INSERT INTO runs (id, blueprint, status, parameters, durability, created_at, updated_at, error, txn)
                SELECT ?, blueprint, 'stopped', parameters, durability, ?, ?, ?, txn FROM runs WHERE id = ?
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
            // Each agent's latest checkpoint written at or before the cut (rows from before commits were numbered
            // carry 0: earlier than every cut), each the first of its chain; then the fork's heads, and their sum. The
            // copies take row ids above every row now.
            let copiedAbove = try connection.scalar("SELECT coalesce(max(id), 0) FROM checkpoints") ?? 0
            try connection.statement(
                CheckpointChains.kept(of: "SELECT id FROM agents WHERE run_id = ?2") + """
                    , chosen AS (SELECT agent, max(seq), id FROM kept WHERE txn <= ?3 GROUP BY agent)
                    INSERT INTO checkpoints (agent_id, seq, epoch, state_version, created_at, state, txn)
                    SELECT n.id, c.seq, c.epoch, c.state_version, c.created_at, c.state, c.txn
                    FROM chosen JOIN checkpoints c ON c.id = chosen.id JOIN agents o ON o.id = chosen.agent
                    JOIN agents n ON n.run_id = ?1 AND n.name = o.name ORDER BY c.id
                    """
            ).run(.text(newRun.rawValue), .text(source), .integer(cut))
            try connection.statement(
                """
                INSERT INTO checkpoint_heads (agent_id, last_seq, last_id)
                SELECT agent_id, seq, id FROM checkpoints WHERE id > ?2 AND agent_id IN (SELECT id FROM agents WHERE run_id = ?1)
                ON CONFLICT (agent_id) DO UPDATE SET last_seq = excluded.last_seq, last_id = excluded.last_id
                """
            ).run(.text(newRun.rawValue), .integer(copiedAbove))
            try connection.statement(
                """
                UPDATE runs SET head_sum = (SELECT coalesce(sum(h.last_seq), 0) FROM agents a
                JOIN checkpoint_heads h ON h.agent_id = a.id WHERE a.run_id = ?1) WHERE id = ?1
                """
            ).run(.text(newRun.rawValue))
            // An agent that had checkpointed by then but whose checkpoint from then was pruned would start from
            // scratch: not the state of that moment. Refused (the transaction rolls the fork back).
            let pruned = try connection.statement(
                CheckpointChains.kept(of: "SELECT id FROM agents WHERE run_id = ?2") + """
                     SELECT o.name FROM (SELECT agent, min(seq) AS oldest FROM kept GROUP BY agent) k
                    JOIN agents o ON o.id = k.agent JOIN agents n ON n.run_id = ?1 AND n.name = o.name
                    WHERE k.oldest > 1 AND NOT EXISTS (SELECT 1 FROM checkpoint_heads h WHERE h.agent_id = n.id)
                    ORDER BY o.name
                    """
            )
            defer { pruned.reset() }
            try pruned.bind([.text(newRun.rawValue), .text(source)])
            var missing: [String] = []
            while try pruned.step() { missing.append(pruned.text(0) ?? "") }
            if !missing.isEmpty { throw TroupeError.inconsistentFork(agent, sequence: sequence, missing: missing) }
            // The messages in flight at the cut, in delivery order, under lease 0: the fork's agents adopt them.
            try connection.statement(
                """
                INSERT INTO messages (run_id, recipient, sender, created_at, payload, lease, sent_txn, trace)
                SELECT ?1, recipient, sender, created_at, payload, 0, sent_txn, trace FROM messages
                WHERE run_id = ?2 AND sent_txn <= ?3 AND (consumed_txn IS NULL OR consumed_txn > ?3) ORDER BY id
                """
            ).run(.text(newRun.rawValue), .text(source), .integer(cut))
        }
    }

    public func prune(keep: Int, eventsBefore: Date?, dryRun: Bool) async throws -> PruneReport {
        let eventsBefore = eventsBefore.map(Self.milliseconds)
        precondition(keep >= 1, "prune must keep at least one checkpoint per agent")
        return try await write { connection in
            // Along each agent's chain, everything past its newest `keep`.
            let chains = CheckpointChains.kept(of: "SELECT agent_id FROM checkpoint_heads")
            let checkpoints = Int(try connection.scalar(chains + " SELECT count(*) FROM kept WHERE depth >= ?1", .integer(Int64(keep))) ?? 0)
            var events = 0
            if let before = eventsBefore {
                events = Int(try connection.scalar("SELECT count(*) FROM events WHERE created_at < ?", .integer(before)) ?? 0)
                if !dryRun { try connection.statement("DELETE FROM events WHERE created_at < ?").run(.integer(before)) }
            }
            if !dryRun {
                try connection.statement(chains + " DELETE FROM checkpoints WHERE id IN (SELECT id FROM kept WHERE depth >= ?1)")
                    .run(.integer(Int64(keep)))
                // Consumed messages no fork can need any more, in every run.
                try connection.statement(WriterSession.sweepConsumedSQL).run(.null)
            }
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
                    throw TroupeError.unknownRun(id, in: "'\(path)'")
                }
                let run = Self.runSummary(statement, heartbeatTimeout: timeout)
                statement.reset()
                if let owner = run.owner, owner.alive {
                    throw TroupeError(
                        .leaseHeld,
                        "run \(id) is being driven by process \(owner.pid) on \(owner.host); it was not "
                            + "deleted (nor were the others named). Stop it first (`troupe cancel \(id)`)."
                    )
                }
            }
            // One statement per table for all the runs: `checkpoints` has no index by agent, and is read once.
            let runs = "SELECT value FROM json_each(?1)"
            let agents = "SELECT id FROM agents WHERE run_id IN (\(runs))"
            let list = try String(decoding: JSONEncoder().encode(ids.map(\.rawValue)), as: UTF8.self)
            for sql in [
                "DELETE FROM steps WHERE agent_id IN (\(agents))",
                "DELETE FROM checkpoints WHERE agent_id IN (\(agents))",
                "DELETE FROM checkpoint_heads WHERE agent_id IN (\(agents))",
                "DELETE FROM agents WHERE run_id IN (\(runs))",
                "DELETE FROM messages WHERE run_id IN (\(runs))",
                "DELETE FROM dead_letters WHERE run_id IN (\(runs))",
                "DELETE FROM events WHERE run_id IN (\(runs))",
                "DELETE FROM commands WHERE run_id IN (\(runs))",
                "DELETE FROM run_trees WHERE run_id IN (\(runs))",
                "DELETE FROM runs WHERE id IN (\(runs))",
            ] {
                try connection.statement(sql).run(.text(list))
            }
            return ids.count
        }
    }

    /// What is wrong with how checkpoints are found (``CheckpointChains``), which SQLite's integrity check cannot see:
    /// heads naming a row that is missing, another agent's or of another sequence, and runs whose heads do not add up
    /// to the sum their commits recorded.
    static func checkpointProblems(_ connection: Connection) -> [String] {
        var problems: [String] = []
        if let heads = try? connection.statement(
            """
            SELECT a.run_id, a.name, h.last_seq FROM checkpoint_heads h JOIN agents a ON a.id = h.agent_id
            LEFT JOIN checkpoints c ON c.id = h.last_id
            WHERE c.id IS NULL OR c.agent_id IS NOT h.agent_id OR c.seq IS NOT h.last_seq ORDER BY a.run_id, a.name
            """
        ) {
            defer { heads.reset() }
            while (try? heads.step()) == true {
                problems.append(
                    "agent '\(heads.text(1) ?? "")' of run \(heads.text(0) ?? ""): its head names checkpoint "
                        + "#\(heads.int64(2)), which is missing or damaged"
                )
            }
        }
        if let sums = try? connection.statement(
            """
            SELECT id, head_sum, found FROM (SELECT r.id, r.head_sum, (SELECT coalesce(sum(h.last_seq), 0) FROM agents a
            JOIN checkpoint_heads h ON h.agent_id = a.id WHERE a.run_id = r.id) AS found FROM runs r)
            WHERE head_sum <> found ORDER BY id
            """
        ) {
            defer { sums.reset() }
            while (try? sums.step()) == true {
                problems.append(
                    "run \(sums.text(0) ?? ""): its checkpoint heads add up to \(sums.int64(2)), but its commits "
                        + "recorded \(sums.int64(1))"
                )
            }
        }
        return problems
    }

    /// Runs SQLite's integrity check and the checks of ``checkpointProblems(_:)``, and compares the migrations applied
    /// with those this build knows.
    public func check() async throws -> StoreHealth {
        let known = Migrator.migrations.map(\.name)
        return try await read { connection in
            let integrity = try connection.texts("PRAGMA integrity_check")
            return StoreHealth(
                problems: (integrity == ["ok"] ? [] : integrity) + Self.checkpointProblems(connection),
                migrations: try connection.texts("SELECT name FROM troupe_migrations ORDER BY id"),
                known: known
            )
        }
    }
}
