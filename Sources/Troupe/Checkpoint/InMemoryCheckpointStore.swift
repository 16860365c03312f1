import Synchronization

/// A ``CheckpointStore`` that keeps checkpoints and dead letters in memory, with the same fencing rules as a
/// persistent store.
///
/// The default store of a ``Run``, and the store to use in tests. It keeps the last ``retention`` checkpoints of
/// each agent.
public final class InMemoryCheckpointStore: CheckpointStore {
    private struct AgentRecord {
        var epoch: UInt64 = 0
        var checkpoints: [Checkpoint] = []
    }

    private struct State {
        var agents: [AgentID: AgentRecord] = [:]
        var deadLetters: [DeadLetter] = []
    }

    private let state = Mutex(State())

    /// How many checkpoints are kept per agent.
    public let retention: Int

    /// Creates an empty store.
    ///
    /// - Parameter retention: How many checkpoints to keep per agent; older ones are dropped. At least 1.
    public init(retention: Int = 3) {
        precondition(retention >= 1, "a checkpoint store must keep at least one checkpoint per agent")
        self.retention = retention
    }

    public func claim(_ agent: AgentID, epoch: UInt64) async throws -> Checkpoint? {
        try state.withLock { state in
            var record = state.agents[agent] ?? AgentRecord()
            guard epoch > record.epoch else {
                throw TroupeError(
                    .fenced,
                    "incarnation \(epoch) of '\(agent)' cannot claim it: incarnation \(record.epoch) already did. "
                        + "Another process may be driving this run."
                )
            }
            record.epoch = epoch
            state.agents[agent] = record
            return record.checkpoints.last
        }
    }

    public func save(_ checkpoint: Checkpoint) async throws {
        try state.withLock { state in
            var record = state.agents[checkpoint.agent] ?? AgentRecord()
            guard checkpoint.epoch == record.epoch else {
                throw TroupeError(
                    .fenced,
                    "rejected a checkpoint of '\(checkpoint.agent)' from incarnation \(checkpoint.epoch); "
                        + "incarnation \(record.epoch) is current. The writer was abandoned or replaced."
                )
            }
            record.checkpoints.append(checkpoint)
            if record.checkpoints.count > retention {
                record.checkpoints.removeFirst(record.checkpoints.count - retention)
            }
            state.agents[checkpoint.agent] = record
        }
    }

    public func deadLetter(_ letter: DeadLetter) async throws {
        state.withLock { $0.deadLetters.append(letter) }
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
}
