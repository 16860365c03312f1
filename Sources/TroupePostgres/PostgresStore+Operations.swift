public import FoundationEssentials
public import Troupe

// What operators ask of the database, and the control queue, behind the engine's ``RunReadModel`` and
// ``ControlQueue``: the same contract as the SQLite store's, checked by the same conformance suite.

extension PostgresStore: OperatorStore {
    public var location: String { "'\(redactedURL)'" }

    /// A run's summary columns, its worker's liveness judged in the database (see ``Session/aliveSQL(_:)``).
    private var runQuery: String {
        """
        SELECT r.id, r.blueprint, r.status, r.parameters, r.created_at, r.ended_at, r.error, r.owner_pid, r.owner_host,
        w.heartbeat_at, (SELECT count(*) FROM agents a WHERE a.run_id = r.id),
        (SELECT coalesce(sum(a.restarts), 0)::int8 FROM agents a WHERE a.run_id = r.id), r.durability,
        coalesce(\(workerAlive), false), r.owner_worker, r.lease_token
        FROM runs r LEFT JOIN workers w ON w.id = r.owner_worker
        """
    }

    private static func runSummary(_ rows: PGRows, _ row: Int) -> RunSummary {
        let parameters = (try? JSONDecoder().decode([String: String].self, from: Data((rows.text(row, 3) ?? "{}").utf8))) ?? [:]
        var owner: RunSummary.Owner?
        if !rows.isNull(row, 7) {
            owner = RunSummary.Owner(
                pid: rows.int64(row, 7), host: rows.text(row, 8) ?? "", heartbeatAt: rows.date(row, 9),
                alive: rows.int64(row, 13) != 0, worker: rows.isNull(row, 14) ? nil : rows.int64(row, 14)
            )
        }
        var status = RunStatus(rawValue: rows.text(row, 2) ?? "") ?? .failed
        if status.isLive, owner?.alive != true { status = .crashed }
        return RunSummary(
            id: RunID(rows.text(row, 0) ?? ""), blueprint: rows.text(row, 1) ?? "", status: status,
            durability: rows.text(row, 12).flatMap(Durability.init), parameters: parameters,
            createdAt: rows.date(row, 4) ?? Date(timeIntervalSince1970: 0), endedAt: rows.date(row, 5),
            error: rows.text(row, 6), owner: owner, agents: rows.int(row, 10), restarts: rows.int(row, 11),
            lease: rows.int64(row, 15)
        )
    }

    public func runs() async throws -> [RunSummary] {
        let query = runQuery
        return try await read { connection in
            let rows = try connection.query("\(query) ORDER BY r.created_at DESC, r.id")
            return (0..<rows.count).map { Self.runSummary(rows, $0) }
        }
    }

    public func run(_ id: RunID) async throws -> RunSummary {
        let (query, location) = (runQuery, location)
        return try await read { connection in
            let rows = try connection.query("\(query) WHERE r.id = $1", .text(id.rawValue))
            guard rows.count > 0 else { throw TroupeError.unknownRun(id, in: location) }
            return Self.runSummary(rows, 0)
        }
    }

    public func agents(of run: RunID) async throws -> [AgentSummary] {
        try await read { connection in
            let rows = try connection.query(
                """
                SELECT a.name, a.type, a.durability, a.status, a.epoch, a.restarts, a.last_error, c.seq, c.created_at,
                (SELECT count(*) FROM messages m WHERE m.run_id = a.run_id AND m.recipient = a.name AND m.consumed_txn IS NULL)
                FROM agents a LEFT JOIN LATERAL (SELECT seq, created_at FROM checkpoints WHERE agent_id = a.id
                ORDER BY seq DESC LIMIT 1) c ON true WHERE a.run_id = $1 ORDER BY a.name
                """,
                .text(run.rawValue)
            )
            return (0..<rows.count).map { row in
                AgentSummary(
                    name: rows.text(row, 0) ?? "", type: rows.text(row, 1) ?? "",
                    durability: rows.text(row, 2).flatMap(Durability.init) ?? .ephemeral,
                    status: AgentStatus(rawValue: rows.text(row, 3) ?? "") ?? .stopped,
                    epoch: UInt64(rows.int64(row, 4)), restarts: rows.int(row, 5), lastError: rows.text(row, 6),
                    lastCheckpoint: rows.isNull(row, 7) ? nil : UInt64(rows.int64(row, 7)),
                    lastCheckpointAt: rows.date(row, 8), pendingMessages: rows.int(row, 9)
                )
            }
        }
    }

    public func checkpointHistory(of agent: AgentID) async throws -> [CheckpointRecord] {
        try await read { connection in
            let rows = try connection.query(
                """
                SELECT c.seq, c.epoch, c.state_version, c.created_at, length(c.state) FROM checkpoints c
                JOIN agents a ON a.id = c.agent_id WHERE a.run_id = $1 AND a.name = $2 ORDER BY c.seq
                """,
                .text(agent.run.rawValue), .text(agent.name)
            )
            return (0..<rows.count).map { row in
                CheckpointRecord(
                    sequence: UInt64(rows.int64(row, 0)), epoch: UInt64(rows.int64(row, 1)), stateVersion: rows.int(row, 2),
                    createdAt: rows.date(row, 3) ?? Date(timeIntervalSince1970: 0), bytes: rows.int(row, 4)
                )
            }
        }
    }

    public func events(of run: RunID, since: Int64, agent: String?, limit: Int) async throws -> [EventRecord] {
        try await read { connection in
            let rows = try connection.query(
                """
                SELECT seq, agent, incarnation, kind, detail, created_at FROM events
                WHERE run_id = $1 AND seq > $2 AND ($3::text IS NULL OR agent = $3) ORDER BY seq LIMIT $4
                """,
                .text(run.rawValue), .int(since), .text(agent), .int(Int64(max(0, limit)))
            )
            return Self.eventRecords(rows, run: run)
        }
    }

    public func lastEvents(of run: RunID, count: Int, agent: String?) async throws -> [EventRecord] {
        try await read { connection in
            let rows = try connection.query(
                """
                SELECT * FROM (SELECT seq, agent, incarnation, kind, detail, created_at FROM events
                WHERE run_id = $1 AND ($2::text IS NULL OR agent = $2) ORDER BY seq DESC LIMIT $3) last ORDER BY seq
                """,
                .text(run.rawValue), .text(agent), .int(Int64(max(0, count)))
            )
            return Self.eventRecords(rows, run: run)
        }
    }

    private static func eventRecords(_ rows: PGRows, run: RunID) -> [EventRecord] {
        (0..<rows.count).map { row in
            EventRecord(
                sequence: rows.int64(row, 0), run: run, agent: rows.text(row, 1) ?? "",
                incarnation: UInt64(max(0, rows.int64(row, 2))), event: rows.text(row, 3) ?? "",
                detail: rows.text(row, 4) ?? "", time: rows.date(row, 5) ?? Date(timeIntervalSince1970: 0)
            )
        }
    }

    public func deadLetters(of run: RunID) async throws -> [DeadLetterRecord] {
        try await read { connection in
            let rows = try connection.query(
                "SELECT id, agent, error, failures, created_at, length(payload) FROM dead_letters WHERE run_id = $1 ORDER BY id",
                .text(run.rawValue)
            )
            return (0..<rows.count).map { row in
                DeadLetterRecord(
                    id: rows.int64(row, 0), agent: rows.text(row, 1) ?? "", error: rows.text(row, 2) ?? "",
                    failures: rows.int(row, 3), createdAt: rows.date(row, 4) ?? Date(timeIntervalSince1970: 0),
                    bytes: rows.int(row, 5)
                )
            }
        }
    }

    public func treeSnapshot(of run: RunID) async throws -> TreeSnapshot? {
        let stored: (String, Date)? = try await read { connection in
            let rows = try connection.query("SELECT tree, tree_at FROM runs WHERE id = $1 AND tree IS NOT NULL", .text(run.rawValue))
            guard rows.count > 0 else { return nil }
            return (rows.text(0, 0) ?? "[]", rows.date(0, 1) ?? Date(timeIntervalSince1970: 0))
        }
        guard let (json, at) = stored else { return nil }
        return try TreeSnapshot(json: json, at: at, run: run, location: location)
    }

    public func publishTree(_ nodes: [TreeNode], of run: RunID) async throws {
        let json = try TreeSnapshot.json(nodes)
        try await writer.perform { session in
            _ = try session.connection.query("UPDATE runs SET tree = $1, tree_at = now() WHERE id = $2", .text(json), .text(run.rawValue))
        }
    }

    public func setPaused(_ paused: Bool, run: RunID) async throws {
        try await writer.perform { session in
            try session.checkLease(run)
            _ = try session.connection.query(
                "UPDATE runs SET status = $1, updated_at = now() WHERE id = $2", .text(paused ? "paused" : "running"), .text(run.rawValue)
            )
        }
    }

    /// When this process drives the run, each agent's next start picks the messages up; otherwise the next
    /// resume does.
    public func requeueDeadLetters(of run: RunID, ids: [Int64]?) async throws -> [String] {
        try await writer.perform { session in try session.requeue(run, ids: ids) }
    }

    public func purgeDeadLetters(of run: RunID, ids: [Int64]?) async throws -> Int {
        try await writer.perform { session in
            try session.connection.query(
                "DELETE FROM dead_letters WHERE run_id = $1 AND ($2::int8[] IS NULL OR id = ANY($2::int8[]))",
                .text(run.rawValue), .text(ids.map(Session.array))
            ).affected
        }
    }

    // MARK: The control queue

    /// Queues the command and, when its insert commits, notifies the owner's listener (`troupe_commands`).
    public func enqueue(_ action: OperatorCommand.Action, for run: RunID, origin: OperatorCommand.Origin?) async throws -> Int64 {
        let location = self.location
        return try await writer.perform { session in
            let connection = session.connection
            guard try connection.scalar("SELECT 1 FROM runs WHERE id = $1", .text(run.rawValue)) != nil else {
                throw TroupeError.unknownRun(run, in: location)
            }
            let id = try connection.scalar(
                """
                INSERT INTO commands (run_id, verb, agent, arguments, created_at) VALUES ($1, $2, $3, $4, now())
                RETURNING id
                """,
                .text(run.rawValue), .text(action.verb), .text(action.agent), .text(Session.json(action.arguments.merging(origin?.arguments ?? [:]) { kept, _ in kept }))
            )
            if session.notifications {
                try connection.query("SELECT pg_notify($1, $2)", .text(Listener.channel), .text(run.rawValue))
            }
            return id ?? 0
        }
    }

    public func commands(of run: RunID) async throws -> [OperatorCommand] {
        try await commands(of: run, after: 0, pendingOnly: false)
    }

    private func commands(of run: RunID, after: Int64, pendingOnly: Bool) async throws -> [OperatorCommand] {
        try await read { connection in
            let rows = try connection.query(
                """
                SELECT id, verb, agent, arguments, created_at, applied_at, result, outcome FROM commands
                WHERE run_id = $1 AND id > $2 AND (NOT $3::bool OR applied_at IS NULL) ORDER BY id
                """,
                .text(run.rawValue), .int(after), .text(pendingOnly ? "true" : "false")
            )
            return (0..<rows.count).map { row in
                let arguments = try? JSONDecoder().decode([String: String].self, from: Data((rows.text(row, 3) ?? "{}").utf8))
                let verb = rows.text(row, 1) ?? ""
                return OperatorCommand(
                    id: rows.int64(row, 0), run: run,
                    action: arguments.map { OperatorCommand.Action(verb: verb, agent: rows.text(row, 2), arguments: $0) }
                        ?? .unrecognized(verb: verb, reason: "its arguments are not a JSON object of strings"),
                    origin: arguments.flatMap(OperatorCommand.Origin.init(arguments:)),
                    createdAt: rows.date(row, 4) ?? Date(timeIntervalSince1970: 0), appliedAt: rows.date(row, 5),
                    result: rows.text(row, 6).map {
                        OperatorCommand.Result(OperatorCommand.Result.Outcome(rawValue: rows.text(row, 7) ?? "") ?? .applied, $0)
                    }
                )
            }
        }
    }

    /// Reads the queue when the listener says a command for the run was queued, and at least once a second.
    public func pendingCommands(of run: RunID) -> AsyncThrowingStream<OperatorCommand, any Error> {
        AsyncThrowingStream { continuation in
            let (wakeUps, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
            let watcher = listener.watch(run) { wake.yield() }
            let task = Task {
                var last: Int64 = 0
                do {
                    var iterator = wakeUps.makeAsyncIterator()
                    repeat {
                        for command in try await self.commands(of: run, after: last, pendingOnly: true) {
                            last = command.id
                            continuation.yield(command)
                        }
                    } while await iterator.next() != nil && !Task.isCancelled
                    continuation.finish()
                } catch is CancellationError {
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { [listener] _ in
                listener.unwatch(watcher)
                wake.finish()
                task.cancel()
            }
        }
    }

    /// Wakes when the writer that logs `run`'s events notifies `troupe_events` (at its commit), and at least once a
    /// second (``Listener``).
    public func eventHints(of run: RunID) -> AsyncStream<Void> {
        AsyncStream(bufferingPolicy: .bufferingNewest(1)) { continuation in
            let watcher = listener.watch(run, on: Listener.eventsChannel) { continuation.yield() }
            continuation.onTermination = { [listener] _ in listener.unwatch(watcher) }
        }
    }

    public func complete(_ command: Int64, with result: OperatorCommand.Result) async throws {
        try await writer.perform { session in
            _ = try session.connection.query(
                "UPDATE commands SET applied_at = now(), result = $1, outcome = $2 WHERE id = $3",
                .text(result.message), .text(result.outcome.rawValue), .int(command)
            )
        }
    }

    // MARK: Fork, prune, delete, check

    /// Creates a new run of the same blueprint and parameters at the cut right after the transaction that wrote
    /// checkpoint `sequence` of `agent` (see ``RunReadModel/fork(_:sequence:as:)``), in one transaction.
    public func fork(_ agent: AgentID, sequence: UInt64, as newRun: RunID) async throws {
        let location = self.location
        _ = try await write { connection in
            let source = agent.run.rawValue
            guard try connection.scalar("SELECT 1 FROM runs WHERE id = $1", .text(source)) != nil else {
                throw TroupeError.unknownRun(agent.run, in: location)
            }
            guard
                let cut = try connection.scalar(
                    """
                    SELECT c.txn FROM checkpoints c JOIN agents a ON a.id = c.agent_id
                    WHERE a.run_id = $1 AND a.name = $2 AND c.seq = $3
                    """,
                    .text(source), .text(agent.name), .int(Int64(sequence))
                )
            else {
                throw TroupeError(
                    .unknownChild,
                    "run \(agent.run) has no checkpoint #\(sequence) of agent '\(agent.name)'. "
                        + "`troupe checkpoints \(agent.run) \(agent.name)` lists the ones kept."
                )
            }
            try connection.query(
                """
                INSERT INTO runs (id, blueprint, status, parameters, durability, created_at, updated_at, error, txn)
                SELECT $1, blueprint, 'stopped', parameters, durability, now(), now(), $2, txn FROM runs WHERE id = $3
                """,
                .text(newRun.rawValue), .text("forked from \(agent.run) at checkpoint #\(sequence) of '\(agent.name)'"), .text(source)
            )
            try connection.query(
                """
                INSERT INTO agents (run_id, name, type, durability, status, epoch, restarts, updated_at)
                SELECT $1, name, type, durability, 'stopped', epoch, 0, now() FROM agents WHERE run_id = $2
                """,
                .text(newRun.rawValue), .text(source)
            )
            // Each agent's latest checkpoint written at or before the cut.
            try connection.query(
                """
                INSERT INTO checkpoints (agent_id, seq, epoch, state_version, created_at, state, txn)
                SELECT n.id, c.seq, c.epoch, c.state_version, c.created_at, c.state, c.txn
                FROM agents o JOIN agents n ON n.run_id = $1 AND n.name = o.name
                JOIN checkpoints c ON c.agent_id = o.id
                WHERE o.run_id = $2 AND c.seq = (SELECT max(c2.seq) FROM checkpoints c2 WHERE c2.agent_id = o.id AND c2.txn <= $3)
                """,
                .text(newRun.rawValue), .text(source), .int(cut)
            )
            try connection.query(
                """
                UPDATE agents SET last_seq = coalesce((SELECT max(seq) FROM checkpoints c WHERE c.agent_id = agents.id), 0)
                WHERE run_id = $1
                """,
                .text(newRun.rawValue)
            )
            // An agent whose checkpoint from then was pruned would start from scratch: refused, and rolled back.
            let pruned = try connection.query(
                """
                SELECT o.name FROM agents o JOIN agents n ON n.run_id = $1 AND n.name = o.name
                WHERE o.run_id = $2 AND (SELECT min(seq) FROM checkpoints c WHERE c.agent_id = o.id) > 1
                AND NOT EXISTS (SELECT 1 FROM checkpoints c WHERE c.agent_id = n.id) ORDER BY o.name
                """,
                .text(newRun.rawValue), .text(source)
            )
            let missing = (0..<pruned.count).compactMap { pruned.text($0, 0) }
            if !missing.isEmpty { throw TroupeError.inconsistentFork(agent, sequence: sequence, missing: missing) }
            // The messages in flight at the cut, in delivery order, under lease 0: the fork's agents adopt them.
            try connection.query(
                """
                INSERT INTO messages (run_id, recipient, sender, created_at, payload, lease, sent_txn, trace)
                SELECT $1, recipient, sender, created_at, payload, 0, sent_txn, trace FROM messages
                WHERE run_id = $2 AND sent_txn <= $3 AND (consumed_txn IS NULL OR consumed_txn > $3) ORDER BY id
                """,
                .text(newRun.rawValue), .text(source), .int(cut)
            )
            return 0
        }
    }

    public func prune(keep: Int, eventsBefore: Date?, dryRun: Bool) async throws -> PruneReport {
        precondition(keep >= 1, "prune must keep at least one checkpoint per agent")
        let before = eventsBefore.map { $0.timeIntervalSince1970 }
        return try await write { connection in
            let doomed = """
                FROM checkpoints c WHERE c.seq <= (SELECT max(seq) FROM checkpoints c2 WHERE c2.agent_id = c.agent_id) - $1
                """
            let checkpoints = Int(try connection.scalar("SELECT count(*) \(doomed)", .int(Int64(keep))) ?? 0)
            var events = 0
            if let before {
                events = Int(try connection.scalar("SELECT count(*) FROM events WHERE created_at < to_timestamp($1::float8)", .double(before)) ?? 0)
                if !dryRun { try connection.query("DELETE FROM events WHERE created_at < to_timestamp($1::float8)", .double(before)) }
            }
            if !dryRun {
                try connection.query("DELETE \(doomed)", .int(Int64(keep)))
                // Consumed messages no fork can need any more: consumed before their recipient's oldest kept checkpoint.
                try connection.query(
                    """
                    DELETE FROM messages m WHERE m.consumed_txn IS NOT NULL
                    AND (SELECT min(c.seq) FROM agents a JOIN checkpoints c ON c.agent_id = a.id
                        WHERE a.run_id = m.run_id AND a.name = m.recipient) > 1
                    AND m.consumed_txn < (SELECT c.txn FROM agents a JOIN checkpoints c ON c.agent_id = a.id
                        WHERE a.run_id = m.run_id AND a.name = m.recipient ORDER BY c.seq LIMIT 1)
                    """
                )
            }
            return PruneReport(checkpoints: checkpoints, events: events)
        }
    }

    /// Deletes runs and everything they stored, all or nothing, in one transaction that locks their rows first
    /// (a run resumed meanwhile is not deleted).
    public func deleteRuns(_ ids: [RunID]) async throws {
        let (query, location) = (runQuery, location)
        _ = try await write { connection in
            for id in ids {
                let rows = try connection.query("\(query) WHERE r.id = $1 FOR UPDATE OF r", .text(id.rawValue))
                guard rows.count > 0 else { throw TroupeError.unknownRun(id, in: location) }
                let run = Self.runSummary(rows, 0)
                if let owner = run.owner, owner.alive {
                    throw TroupeError(
                        .leaseHeld,
                        "run \(id) is being driven by process \(owner.pid) on \(owner.host); it was not deleted (nor "
                            + "were the others named). Stop it first (`troupe cancel \(id)`)."
                    )
                }
                let agents = "SELECT id FROM agents WHERE run_id = $1"
                for sql in [
                    "DELETE FROM steps WHERE agent_id IN (\(agents))",
                    "DELETE FROM checkpoints WHERE agent_id IN (\(agents))",
                    "DELETE FROM agents WHERE run_id = $1",
                    "DELETE FROM messages WHERE run_id = $1",
                    "DELETE FROM dead_letters WHERE run_id = $1",
                    "DELETE FROM events WHERE run_id = $1",
                    "DELETE FROM commands WHERE run_id = $1",
                    "DELETE FROM runs WHERE id = $1",
                ] {
                    try connection.query(sql, .text(id.rawValue))
                }
            }
            return ids.count
        }
    }

    /// Compares the migrations applied with those this build knows, and checks that every agent's latest
    /// checkpoint is the one its row records.
    public func check() async throws -> StoreHealth {
        let known = Migrator.migrations.map(\.name)
        return try await read { connection in
            let applied = try connection.query("SELECT name FROM troupe_migrations ORDER BY id")
            let mismatched = try connection.query(
                """
                SELECT a.run_id, a.name, a.last_seq, coalesce(max(c.seq), 0) FROM agents a
                LEFT JOIN checkpoints c ON c.agent_id = a.id GROUP BY a.id HAVING a.last_seq <> coalesce(max(c.seq), 0)
                ORDER BY a.run_id, a.name LIMIT 20
                """
            )
            let problems = (0..<mismatched.count).map { row in
                "agent '\(mismatched.text(row, 1) ?? "")' of run \(mismatched.text(row, 0) ?? ""): its row records "
                    + "checkpoint #\(mismatched.int64(row, 2)), the latest stored is #\(mismatched.int64(row, 3))"
            }
            return StoreHealth(problems: problems, migrations: (0..<applied.count).compactMap { applied.text($0, 0) }, known: known)
        }
    }
}
