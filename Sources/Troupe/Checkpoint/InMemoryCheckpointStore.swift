public import FoundationEssentials
import Synchronization

/// A store that keeps checkpoints, durable messages, dead letters, events and operators' commands in memory, with
/// the same rules as a persistent store.
///
/// The default store of a ``Run``, and the store to use in tests. It keeps the last ``retention`` checkpoints of
/// each agent. A second ``Run`` with the same identifier on the same store acts as a resume, which lets tests
/// exercise the resume path without a database. It is a whole ``OperatorStore``: the `troupe` verbs and the
/// controller of a run work on it as on any backend (its runs' owner is this process).
public final class InMemoryCheckpointStore: OperatorStore {
    private struct AgentRecord {
        var epoch: UInt64 = 0
        var checkpoints: [Checkpoint] = []
        var times: [UInt64: Date] = [:]
        /// The commit (``State/clock``) that wrote each retained checkpoint, by sequence.
        var commits: [UInt64: UInt64] = [:]
        var steps: [String: [UInt8]] = [:]
        var type = ""
        var durability = Durability.ephemeral
        var status = AgentStatus.running
        var restarts = 0
        var lastError: String?
    }

    private struct RunState {
        var attached = false
        /// Grows with every attach: messages carry the lease they were accepted under.
        var lease: UInt64 = 0
        var blueprint = ""
        var parameters: [String: String] = [:]
        var durability: Durability?
        var status = RunStatus.running
        var createdAt = Date()
        var endedAt: Date?
        var error: String?
        var heartbeat: Date?
        var tree: TreeSnapshot?
        var events: [EventRecord] = []
        /// How many of `events` are agents' log lines.
        var logLines = 0
        var commands: [OperatorCommand] = []
    }

    private struct DeadRow {
        var id: Int64
        var letter: DeadLetter
        var createdAt: Date
    }

    /// A stored message, the lease it was accepted (or last adopted) under, and the commits that sent and consumed
    /// it. A consumed message is kept while a fork may still need it (as in flight at an earlier cut).
    private struct Row {
        var message: StoredMessage
        var lease: UInt64
        var sent: UInt64
        var consumed: UInt64? = nil

        var isPending: Bool { consumed == nil }
    }

    private struct State {
        var runs: [RunID: RunState] = [:]
        var agents: [AgentID: AgentRecord] = [:]
        var messages: [RunID: [Row]] = [:]
        var nextMessage: Int64 = 0
        var deadLetters: [DeadRow] = []
        var nextDeadLetter: Int64 = 0
        var events: [Event] = []
        var nextEvent: Int64 = 0
        var nextCommand: Int64 = 0
        /// Readers of ``pendingCommands(of:)``, by run.
        var listeners: [RunID: [UInt64: AsyncThrowingStream<OperatorCommand, any Error>.Continuation]] = [:]
        var nextListener: UInt64 = 0
        /// Numbers every change in commit order: a checkpoint, a sent or consumed message records the change's.
        var clock: UInt64 = 0

        mutating func tick() -> UInt64 {
            clock += 1
            return clock
        }

        /// Marks the pending messages of `run` that `matches` selects as consumed by commit `commit`.
        mutating func consume(in run: RunID, at commit: UInt64, where matches: (StoredMessage) -> Bool) {
            guard var rows = messages[run] else { return }
            for index in rows.indices where rows[index].isPending && matches(rows[index].message) {
                rows[index].consumed = commit
            }
            messages[run] = rows
        }
    }

    private let state = Mutex(State())

    /// How many checkpoints are kept per agent.
    public let retention: Int
    /// Whether ``events`` keeps the runs' events. Off by default: an in-memory log would only grow.
    public let recordsEvents: Bool

    /// Creates an empty store.
    ///
    /// - Parameters:
    ///   - retention: How many checkpoints to keep per agent; older ones are dropped. At least 1.
    ///   - recordsEvents: Whether to keep every event in ``events`` (for tests).
    public init(retention: Int = 3, recordsEvents: Bool = false) {
        precondition(retention >= 1, "a checkpoint store must keep at least one checkpoint per agent")
        self.retention = retention
        self.recordsEvents = recordsEvents
    }

    public func attach(_ run: RunRecord) async throws -> Bool {
        try state.withLock { state in
            let known = state.runs[run.id] != nil
            guard state.runs[run.id]?.attached != true else {
                throw TroupeError(
                    .leaseHeld,
                    "run \(run.id) is already being driven by another Run in this process. Wait for it to end."
                )
            }
            var record = state.runs[run.id] ?? RunState()
            record.attached = true
            record.lease += 1
            record.blueprint = run.blueprint
            record.parameters = run.parameters
            record.durability = run.durability ?? record.durability
            record.status = record.status == .paused ? .paused : .running
            record.endedAt = nil
            record.error = nil
            record.heartbeat = Date()
            state.runs[run.id] = record
            // Durable messages to names the blueprint no longer has become dead letters, as in every store.
            if known, !run.agents.isEmpty {
                let names = Set(run.agents)
                let orphans = (state.messages[run.id] ?? []).filter { $0.isPending && !names.contains($0.message.recipient) }
                state.consume(in: run.id, at: state.tick()) { !names.contains($0.recipient) }
                for row in orphans {
                    state.nextDeadLetter += 1
                    let letter = DeadLetter(
                        agent: AgentID(run: run.id, name: row.message.recipient),
                        message: row.message.payload,
                        error: "no agent '\(row.message.recipient)' in blueprint '\(run.blueprint)' any more",
                        failures: 0
                    )
                    state.deadLetters.append(DeadRow(id: state.nextDeadLetter, letter: letter, createdAt: Date()))
                }
            }
            return known
        }
    }

    public func detach(_ run: RunID, outcome: RunOutcome, error: String?) async {
        state.withLock { state in
            guard state.runs[run]?.attached == true else { return }
            state.runs[run]?.attached = false
            state.runs[run]?.status = RunStatus(outcome)
            state.runs[run]?.error = error
            state.runs[run]?.endedAt = Date()
        }
    }

    public func claim(_ agent: AgentID, type: String, durability: Durability, incarnation: UInt64) async throws -> Claim {
        state.withLock { state in
            var record = state.agents[agent] ?? AgentRecord()
            record.epoch += 1
            record.type = type
            record.durability = durability
            record.status = .running
            // Messages accepted under an older lease are adopted by the current one and returned, once.
            var pending: [StoredMessage] = []
            let lease = state.runs[agent.run]?.lease ?? 0
            if var rows = state.messages[agent.run] {
                for index in rows.indices
                where rows[index].isPending && rows[index].message.recipient == agent.name && rows[index].lease < lease {
                    rows[index].lease = lease
                    pending.append(rows[index].message)
                }
                state.messages[agent.run] = rows
            }
            state.agents[agent] = record
            return Claim(epoch: record.epoch, latest: record.checkpoints.last, pending: pending, steps: record.steps)
        }
    }

    public func commit(_ commit: Commit) async throws -> [Int64] {
        try state.withLock { state in
            if let agent = commit.agent {
                let current = state.agents[agent]?.epoch ?? 0
                guard commit.epoch == current else { throw TroupeError.fenced(agent, epoch: commit.epoch, current: current) }
            }
            let now = state.tick()
            if let agent = commit.agent {
                if var checkpoint = commit.checkpoint {
                    var record = state.agents[agent] ?? AgentRecord()
                    checkpoint.agent = agent
                    record.checkpoints.append(checkpoint)
                    record.times[checkpoint.sequence] = Date()
                    record.commits[checkpoint.sequence] = now
                    state.agents[agent] = record
                    if record.checkpoints.count > retention {
                        Self.keepLast(retention, of: agent, sweep: checkpoint.sequence % UInt64(retention) == 0, &state)
                    }
                }
                if !commit.finishedSteps.isEmpty {
                    let scopes = commit.finishedSteps.map { $0 + "/" }
                    let kept = (state.agents[agent]?.steps ?? [:]).filter { key, _ in !scopes.contains { key.hasPrefix($0) } }
                    state.agents[agent]?.steps = kept
                }
                if !commit.consumed.isEmpty {
                    let consumed = Set(commit.consumed)
                    state.consume(in: agent.run, at: now) { consumed.contains($0.id) }
                }
            }
            guard !commit.sent.isEmpty else { return [] }
            let run = commit.run
            let lease = state.runs[run]?.lease ?? 0
            return commit.sent.map { message in
                state.nextMessage += 1
                let stored = StoredMessage(
                    id: state.nextMessage,
                    recipient: message.recipient,
                    sender: commit.agent?.name,
                    payload: message.payload,
                    trace: message.trace
                )
                state.messages[run, default: []].append(Row(message: stored, lease: lease, sent: now))
                return state.nextMessage
            }
        }
    }

    public func deadLetter(_ letter: DeadLetter) async throws {
        state.withLock { state in
            state.nextDeadLetter += 1
            state.deadLetters.append(DeadRow(id: state.nextDeadLetter, letter: letter, createdAt: Date()))
            if let id = letter.messageID {
                state.consume(in: letter.agent.run, at: state.tick()) { $0.id == id }
                // The message's unit of work ends here: its recorded steps must never be replayed to anything else.
                let scope = "m\(id)/"
                if var record = state.agents[letter.agent] {
                    record.steps = record.steps.filter { !$0.key.hasPrefix(scope) }
                    state.agents[letter.agent] = record
                }
            }
        }
    }

    public func recordStep(_ agent: AgentID, epoch: UInt64, key: String, result: [UInt8]) async throws {
        try state.withLock { state in
            let current = state.agents[agent]?.epoch ?? 0
            guard epoch == current else { throw TroupeError.fenced(agent, epoch: epoch, current: current) }
            state.agents[agent]?.steps[key] = result
        }
    }

    public func record(_ event: Event) {
        state.withLock { state in
            state.events.append(event)
            guard state.runs[event.run]?.attached == true else { return }
            state.nextEvent += 1
            state.runs[event.run]?.events.append(EventRecord(event, sequence: state.nextEvent))
            if case .logged = event.kind {
                // As the other stores: the newest lines stay, and older ones go once a run has `every` more than it
                // keeps (``LogRetention``), in one pass: a pass per line held this lock for seconds.
                state.runs[event.run]?.logLines += 1
                if let counted = state.runs[event.run]?.logLines, counted >= LogRetention.lines + LogRetention.every,
                    let lines = state.runs[event.run]?.events.lazy.filter({ $0.event == "log" }).count
                {
                    var surplus = max(0, lines - LogRetention.lines)
                    state.runs[event.run]?.events.removeAll { record in
                        guard surplus > 0, record.event == "log" else { return false }
                        surplus -= 1
                        return true
                    }
                    state.runs[event.run]?.logLines = min(lines, LogRetention.lines)
                }
            }
            let agent = AgentID(run: event.run, name: event.name)
            guard state.agents[agent] != nil else { return }
            if let status = event.kind.impliedStatus { state.agents[agent]?.status = status }
            if let error = event.kind.error { state.agents[agent]?.lastError = error }
            if case .restarting(_, let restarts) = event.kind { state.agents[agent]?.restarts = restarts }
        }
    }

    /// The retained checkpoints of `agent`, oldest first.
    public func checkpoints(of agent: AgentID) -> [Checkpoint] {
        state.withLock { $0.agents[agent]?.checkpoints ?? [] }
    }

    /// The latest checkpoint of `agent`.
    public func latest(of agent: AgentID) -> Checkpoint? {
        state.withLock { $0.agents[agent]?.checkpoints.last }
    }

    /// Every dead letter recorded, oldest first.
    public var deadLetters: [DeadLetter] {
        state.withLock { $0.deadLetters.map(\.letter) }
    }

    /// The durable messages of `run` that no agent has committed yet, in delivery order.
    public func pendingMessages(of run: RunID) -> [StoredMessage] {
        state.withLock { ($0.messages[run] ?? []).filter(\.isPending).map(\.message) }
    }

    /// Every event recorded, oldest first (empty unless created with `recordsEvents`).
    public var events: [Event] {
        state.withLock { $0.events }
    }
}

// MARK: The operator's view and the control queue

extension InMemoryCheckpointStore {
    public var location: String { "this process's memory" }

    private static func summary(_ id: RunID, _ run: RunState, agents: [AgentRecord]) -> RunSummary {
        RunSummary(
            id: id, blueprint: run.blueprint, status: run.status, durability: run.durability,
            parameters: run.parameters, createdAt: run.createdAt, endedAt: run.endedAt, error: run.error,
            owner: run.attached ? RunSummary.Owner(pid: Int64(ProcessInfo.processInfo.processIdentifier), host: "this process", heartbeatAt: run.heartbeat, alive: true) : nil,
            agents: agents.count, restarts: agents.reduce(0) { $0 + $1.restarts }, lease: Int64(run.lease)
        )
    }

    private static func agents(of run: RunID, _ state: State) -> [(String, AgentRecord)] {
        state.agents.filter { $0.key.run == run }.map { ($0.key.name, $0.value) }.sorted { $0.0 < $1.0 }
    }

    private func existing(_ id: RunID, _ state: State) throws -> RunState {
        guard let run = state.runs[id] else { throw TroupeError.unknownRun(id, in: location) }
        return run
    }

    public func runs() async throws -> [RunSummary] {
        state.withLock { state in
            state.runs.map { id, run in Self.summary(id, run, agents: Self.agents(of: id, state).map(\.1)) }
                .sorted { ($0.createdAt, $1.id.rawValue) > ($1.createdAt, $0.id.rawValue) }
        }
    }

    public func run(_ id: RunID) async throws -> RunSummary {
        try state.withLock { state in
            Self.summary(id, try existing(id, state), agents: Self.agents(of: id, state).map(\.1))
        }
    }

    public func agents(of run: RunID) async throws -> [AgentSummary] {
        state.withLock { state in
            Self.agents(of: run, state).map { name, record in
                AgentSummary(
                    name: name, type: record.type, durability: record.durability, status: record.status,
                    epoch: record.epoch, restarts: record.restarts, lastError: record.lastError,
                    lastCheckpoint: record.checkpoints.last?.sequence,
                    lastCheckpointAt: record.checkpoints.last.flatMap { record.times[$0.sequence] },
                    pendingMessages: (state.messages[run] ?? []).filter { $0.isPending && $0.message.recipient == name }.count
                )
            }
        }
    }

    public func checkpointHistory(of agent: AgentID) async throws -> [CheckpointRecord] {
        state.withLock { state in
            guard let record = state.agents[agent] else { return [] }
            return record.checkpoints.map {
                CheckpointRecord(
                    sequence: $0.sequence, epoch: $0.epoch, stateVersion: $0.stateVersion,
                    createdAt: record.times[$0.sequence] ?? Date(), bytes: $0.state.count
                )
            }
        }
    }

    public func events(of run: RunID, since: Int64, agent: String?, limit: Int) async throws -> [EventRecord] {
        state.withLock { state in
            Array(
                (state.runs[run]?.events ?? []).lazy.filter { $0.sequence > since && (agent == nil || $0.agent == agent) }
                    .prefix(max(0, limit))
            )
        }
    }

    public func lastEvents(of run: RunID, count: Int, agent: String?) async throws -> [EventRecord] {
        state.withLock { state in
            Array((state.runs[run]?.events ?? []).filter { agent == nil || $0.agent == agent }.suffix(max(0, count)))
        }
    }

    public func deadLetters(of run: RunID) async throws -> [DeadLetterRecord] {
        state.withLock { state in
            state.deadLetters.filter { $0.letter.agent.run == run }.map {
                DeadLetterRecord(
                    id: $0.id, agent: $0.letter.agent.name, error: $0.letter.error, failures: $0.letter.failures,
                    createdAt: $0.createdAt, bytes: $0.letter.message.count
                )
            }
        }
    }

    public func treeSnapshot(of run: RunID) async throws -> TreeSnapshot? {
        state.withLock { $0.runs[run]?.tree }
    }

    public func requeueDeadLetters(of run: RunID, ids: [Int64]?) async throws -> [String] {
        state.withLock { state in
            let wanted = ids.map(Set.init)
            let chosen = state.deadLetters.filter { $0.letter.agent.run == run && (wanted?.contains($0.id) ?? true) }
            let chosenIDs = Set(chosen.map(\.id))
            state.deadLetters.removeAll { chosenIDs.contains($0.id) }
            let now = state.tick()
            for row in chosen {
                // Under lease 0, older than every lease: the agent's next claim adopts it.
                state.nextMessage += 1
                let message = StoredMessage(
                    id: state.nextMessage, recipient: row.letter.agent.name, sender: nil, payload: row.letter.message
                )
                state.messages[run, default: []].append(Row(message: message, lease: 0, sent: now))
            }
            return chosen.map(\.letter.agent.name)
        }
    }

    public func purgeDeadLetters(of run: RunID, ids: [Int64]?) async throws -> Int {
        state.withLock { state in
            let wanted = ids.map(Set.init)
            let before = state.deadLetters.count
            state.deadLetters.removeAll { $0.letter.agent.run == run && (wanted?.contains($0.id) ?? true) }
            return before - state.deadLetters.count
        }
    }

    public func fork(_ agent: AgentID, sequence: UInt64, as newRun: RunID) async throws {
        try state.withLock { state in
            var source = try existing(agent.run, state)
            guard let chosen = state.agents[agent], chosen.checkpoints.contains(where: { $0.sequence == sequence }) else {
                throw TroupeError(
                    .unknownChild,
                    "run \(agent.run) has no checkpoint #\(sequence) of agent '\(agent.name)'. "
                        + "`troupe checkpoints \(agent.run) \(agent.name)` lists the ones kept."
                )
            }
            // The cut: right after the commit that wrote the chosen checkpoint. Each agent's state is its latest
            // checkpoint committed by then; one whose checkpoint from then was pruned makes no consistent cut.
            let cut = chosen.commits[sequence] ?? 0
            var kept: [String: Checkpoint] = [:]
            var missing: [String] = []
            for (name, record) in Self.agents(of: agent.run, state) {
                if let latest = record.checkpoints.last(where: { (record.commits[$0.sequence] ?? 0) <= cut }) {
                    kept[name] = latest
                } else if let first = record.checkpoints.first, first.sequence > 1 {
                    missing.append(name)
                }
            }
            if !missing.isEmpty { throw TroupeError.inconsistentFork(agent, sequence: sequence, missing: missing) }
            let time = chosen.times[sequence] ?? Date()
            source.attached = false
            source.status = .stopped
            source.createdAt = Date()
            source.endedAt = nil
            source.heartbeat = nil
            source.tree = nil
            source.events = []
            source.commands = []
            source.error = "forked from \(agent.run) at checkpoint #\(sequence) of '\(agent.name)'"
            state.runs[newRun] = source
            for (name, record) in Self.agents(of: agent.run, state) {
                var copy = record
                copy.steps = [:]
                copy.restarts = 0
                copy.status = .stopped
                let checkpoint = kept[name]
                copy.checkpoints = checkpoint.map { checkpoint in
                    var moved = checkpoint
                    moved.agent = AgentID(run: newRun, name: name)
                    return [moved]
                } ?? []
                copy.times = checkpoint.map { [$0.sequence: record.times[$0.sequence] ?? time] } ?? [:]
                copy.commits = checkpoint.map { [$0.sequence: record.commits[$0.sequence] ?? 0] } ?? [:]
                state.agents[AgentID(run: newRun, name: name)] = copy
            }
            // The messages in flight at the cut: sent by then, not consumed by then. Under lease 0, so that the
            // fork's agents adopt them when it is resumed.
            for row in state.messages[agent.run] ?? [] where row.sent <= cut && (row.consumed.map { $0 > cut } ?? true) {
                state.nextMessage += 1
                var message = row.message
                message.id = state.nextMessage
                state.messages[newRun, default: []].append(Row(message: message, lease: 0, sent: row.sent))
            }
        }
    }

    /// Drops all but the last `count` checkpoints of `agent`, and the consumed messages to it that no consistent
    /// cut can have in flight any more: those consumed before its oldest kept checkpoint (a fork needs one of the
    /// kept ones, so its cut lies at or after it). While its first checkpoint is kept, a cut may precede every
    /// checkpoint, so nothing consumed is dropped then. `sweep: false` drops checkpoints only (the commit path
    /// sweeps messages every `count` checkpoints, not at each).
    private static func keepLast(_ count: Int, of agent: AgentID, sweep: Bool = true, _ state: inout State) {
        guard var record = state.agents[agent], record.checkpoints.count > count else { return }
        for dropped in record.checkpoints.prefix(record.checkpoints.count - count) {
            record.times[dropped.sequence] = nil
            record.commits[dropped.sequence] = nil
        }
        record.checkpoints.removeFirst(record.checkpoints.count - count)
        state.agents[agent] = record
        guard sweep, let oldest = record.checkpoints.first, oldest.sequence > 1, let since = record.commits[oldest.sequence]
        else { return }
        state.messages[agent.run]?.removeAll { row in
            row.message.recipient == agent.name && (row.consumed.map { $0 < since } ?? false)
        }
    }

    public func prune(keep: Int, eventsBefore: Date?, dryRun: Bool) async throws -> PruneReport {
        precondition(keep >= 1, "prune must keep at least one checkpoint per agent")
        return state.withLock { state in
            var checkpoints = 0
            for (id, record) in state.agents where record.checkpoints.count > keep {
                checkpoints += record.checkpoints.count - keep
                if !dryRun { Self.keepLast(keep, of: id, &state) }
            }
            var events = 0
            if let before = eventsBefore {
                for (id, run) in state.runs {
                    events += run.events.filter { $0.time < before }.count
                    if !dryRun { state.runs[id]?.events.removeAll { $0.time < before } }
                }
            }
            return PruneReport(checkpoints: checkpoints, events: events)
        }
    }

    public func deleteRuns(_ ids: [RunID]) async throws {
        try state.withLock { state in
            for id in ids {
                if try existing(id, state).attached {
                    throw TroupeError(
                        .leaseHeld,
                        "run \(id) is being driven by this process; it was not deleted (nor were the others named). "
                            + "Stop it first."
                    )
                }
            }
            for id in ids {
                state.runs[id] = nil
                state.messages[id] = nil
                state.deadLetters.removeAll { $0.letter.agent.run == id }
                for key in state.agents.keys where key.run == id { state.agents[key] = nil }
            }
        }
    }

    public func check() async throws -> StoreHealth {
        StoreHealth(problems: [], migrations: [], known: [])
    }

    public func enqueue(_ action: OperatorCommand.Action, for run: RunID, origin: OperatorCommand.Origin?) async throws -> Int64 {
        let (command, listeners) = try state.withLock { state in
            _ = try existing(run, state)
            state.nextCommand += 1
            let command = OperatorCommand(id: state.nextCommand, run: run, action: action, origin: origin, createdAt: Date())
            state.runs[run]?.commands.append(command)
            return (command, Array((state.listeners[run] ?? [:]).values))
        }
        for listener in listeners { listener.yield(command) }
        return command.id
    }

    public func commands(of run: RunID) async throws -> [OperatorCommand] {
        state.withLock { $0.runs[run]?.commands ?? [] }
    }

    public func pendingCommands(of run: RunID) -> AsyncThrowingStream<OperatorCommand, any Error> {
        let (stream, continuation) = AsyncThrowingStream<OperatorCommand, any Error>.makeStream()
        let id = state.withLock { state in
            state.nextListener += 1
            // Registered and filled under one lock: no command is missed or given twice.
            for command in state.runs[run]?.commands ?? [] where command.appliedAt == nil { continuation.yield(command) }
            state.listeners[run, default: [:]][state.nextListener] = continuation
            return state.nextListener
        }
        continuation.onTermination = { [weak self] _ in
            self?.state.withLock { $0.listeners[run]?[id] = nil }
        }
        return stream
    }

    public func complete(_ command: Int64, with result: OperatorCommand.Result) async throws {
        state.withLock { state in
            for (id, run) in state.runs {
                guard let index = run.commands.firstIndex(where: { $0.id == command }) else { continue }
                state.runs[id]?.commands[index].appliedAt = Date()
                state.runs[id]?.commands[index].result = result
            }
        }
    }

    public func publishTree(_ nodes: [TreeNode], of run: RunID) async throws {
        state.withLock { $0.runs[run]?.tree = TreeSnapshot(nodes: nodes, at: Date()) }
    }

    public func setPaused(_ paused: Bool, run: RunID) async throws {
        state.withLock { state in
            guard state.runs[run]?.attached == true else { return }
            state.runs[run]?.status = paused ? .paused : .running
        }
    }

    /// Nothing to release.
    public func close() async {}
}

extension TroupeError {
    /// The error a store raises for a fork that would start agents from scratch because their checkpoints from
    /// that moment were pruned.
    public static func inconsistentFork(_ agent: AgentID, sequence: UInt64, missing: [String]) -> TroupeError {
        TroupeError(
            .unknownChild,
            "run \(agent.run) cannot be forked at checkpoint #\(sequence) of '\(agent.name)': "
                + "\(missing.map { "'\($0)'" }.joined(separator: ", ")) kept no checkpoint from that moment (older ones "
                + "were pruned), so the fork would start \(missing.count == 1 ? "it" : "them") from scratch. Fork from a "
                + "later checkpoint (`troupe checkpoints \(agent.run) \(agent.name)`), or keep more with `--retain N`."
        )
    }

    /// The error a store raises when the latest checkpoint it finds for `agent` is not the one the agent's record
    /// says it committed last: the storage is damaged, and the state found would be stale.
    public static func damagedCheckpoints(_ agent: AgentID, found: Int64, recorded: Int64, path: String) -> TroupeError {
        TroupeError(
            .corruptCheckpoint,
            "the checkpoints of agent '\(agent.name)' of run \(agent.run) in '\(path)' are damaged: the latest one "
                + "reads as #\(found), but the agent committed #\(recorded) last. Nothing was loaded from them; run "
                + "`troupe db check` on the database, and restore it from a backup if the check fails."
        )
    }

    /// The error a store raises for a commit from an incarnation that is no longer current.
    public static func fenced(_ agent: AgentID, epoch: UInt64, current: UInt64) -> TroupeError {
        TroupeError(
            .fenced,
            "rejected a commit of '\(agent)' from epoch \(epoch); epoch \(current) is current. The writer was "
                + "abandoned or replaced (by a restart, or by another process resuming the run)."
        )
    }
}
