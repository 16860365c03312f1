import Synchronization

/// A ``CheckpointStore`` that keeps checkpoints, durable messages and dead letters in memory, with the same
/// fencing rules as a persistent store.
///
/// The default store of a ``Run``, and the store to use in tests. It keeps the last ``retention`` checkpoints of
/// each agent. A second ``Run`` with the same identifier on the same store acts as a resume, which lets tests
/// exercise the resume path without a database.
public final class InMemoryCheckpointStore: CheckpointStore {
    private struct AgentRecord {
        var epoch: UInt64 = 0
        var checkpoints: [Checkpoint] = []
        var steps: [String: [UInt8]] = [:]
    }

    private struct RunState {
        var attached = false
        /// Grows with every attach: messages carry the lease they were accepted under.
        var lease: UInt64 = 0
    }

    /// A stored message and the lease it was accepted (or last adopted) under.
    private struct Row {
        var message: StoredMessage
        var lease: UInt64
    }

    private struct State {
        var runs: [RunID: RunState] = [:]
        var agents: [AgentID: AgentRecord] = [:]
        var messages: [RunID: [Row]] = [:]
        var nextMessage: Int64 = 0
        var deadLetters: [DeadLetter] = []
        var events: [Event] = []
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
            state.runs[run.id] = RunState(attached: true, lease: (state.runs[run.id]?.lease ?? 0) + 1)
            return known
        }
    }

    public func detach(_ run: RunID, outcome: RunOutcome, error: String?) async {
        state.withLock { $0.runs[run]?.attached = false }
    }

    public func claim(_ agent: AgentID, type: String, durability: Durability, incarnation: UInt64) async throws -> Claim {
        state.withLock { state in
            var record = state.agents[agent] ?? AgentRecord()
            record.epoch += 1
            // Messages accepted under an older lease are adopted by the current one and returned, once.
            var pending: [StoredMessage] = []
            let lease = state.runs[agent.run]?.lease ?? 0
            if var rows = state.messages[agent.run] {
                for index in rows.indices where rows[index].message.recipient == agent.name && rows[index].lease < lease {
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
                if var checkpoint = commit.checkpoint {
                    var record = state.agents[agent] ?? AgentRecord()
                    checkpoint.agent = agent
                    record.checkpoints.append(checkpoint)
                    if record.checkpoints.count > retention {
                        record.checkpoints.removeFirst(record.checkpoints.count - retention)
                    }
                    state.agents[agent] = record
                }
                if !commit.finishedSteps.isEmpty {
                    let scopes = commit.finishedSteps.map { $0 + "/" }
                    let kept = (state.agents[agent]?.steps ?? [:]).filter { key, _ in !scopes.contains { key.hasPrefix($0) } }
                    state.agents[agent]?.steps = kept
                }
                if !commit.consumed.isEmpty {
                    let consumed = Set(commit.consumed)
                    state.messages[agent.run]?.removeAll { consumed.contains($0.message.id) }
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
                    payload: message.payload
                )
                state.messages[run, default: []].append(Row(message: stored, lease: lease))
                return state.nextMessage
            }
        }
    }

    public func deadLetter(_ letter: DeadLetter) async throws {
        state.withLock { state in
            state.deadLetters.append(letter)
            if let id = letter.messageID {
                state.messages[letter.agent.run]?.removeAll { $0.message.id == id }
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
        state.withLock { $0.events.append(event) }
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
        state.withLock { $0.deadLetters }
    }

    /// The durable messages of `run` that no agent has committed yet, in delivery order.
    public func pendingMessages(of run: RunID) -> [StoredMessage] {
        state.withLock { ($0.messages[run] ?? []).map(\.message) }
    }

    /// Every event recorded, oldest first (empty unless created with `recordsEvents`).
    public var events: [Event] {
        state.withLock { $0.events }
    }
}

extension TroupeError {
    /// The error a store raises for a commit from an incarnation that is no longer current.
    public static func fenced(_ agent: AgentID, epoch: UInt64, current: UInt64) -> TroupeError {
        TroupeError(
            .fenced,
            "rejected a commit of '\(agent)' from epoch \(epoch); epoch \(current) is current. The writer was "
                + "abandoned or replaced (by a restart, or by another process resuming the run)."
        )
    }
}
