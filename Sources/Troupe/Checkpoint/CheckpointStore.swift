/// One saved state of one agent.
public struct Checkpoint: Sendable, Hashable {
    /// Whose state this is.
    public var agent: AgentID
    /// The incarnation that wrote it. Stores reject a checkpoint whose epoch is older than the agent's current one.
    public var epoch: UInt64
    /// Increases by one with every checkpoint of the agent, across incarnations.
    public var sequence: UInt64
    /// ``Agent/stateVersion`` of the agent that wrote it.
    public var stateVersion: Int
    /// The encoded state.
    public var state: [UInt8]

    /// Creates a checkpoint.
    public init(agent: AgentID, epoch: UInt64, sequence: UInt64, stateVersion: Int, state: [UInt8]) {
        self.agent = agent
        self.epoch = epoch
        self.sequence = sequence
        self.stateVersion = stateVersion
        self.state = state
    }
}

/// A message set aside because it crashed its agent too many times.
public struct DeadLetter: Sendable, Hashable {
    /// The agent that could not handle it.
    public var agent: AgentID
    /// The encoded message, so that it can be inspected or sent again.
    public var message: [UInt8]
    /// The last error it caused.
    public var error: String
    /// How many deliveries crashed the agent.
    public var failures: Int

    /// Creates a dead letter.
    public init(agent: AgentID, message: [UInt8], error: String, failures: Int) {
        self.agent = agent
        self.message = message
        self.error = error
        self.failures = failures
    }
}

/// Where agents' checkpoints and dead letters are kept.
///
/// The engine calls a store from many agents at once. ``InMemoryCheckpointStore`` keeps everything in memory; the
/// SQLite store makes it survive the process.
///
/// Fencing: every incarnation first ``claim(_:epoch:)``s its agent with a larger epoch than the last; from then on
/// the store must reject ``save(_:)`` calls that carry an older epoch with ``TroupeError/Code/fenced``, so that a
/// late write from an abandoned incarnation cannot overwrite its successor's progress.
public protocol CheckpointStore: Sendable {
    /// Makes `epoch` the agent's current incarnation and returns the agent's latest checkpoint, if any.
    ///
    /// - Throws: ``TroupeError/Code/fenced`` if a newer epoch has already claimed the agent.
    func claim(_ agent: AgentID, epoch: UInt64) async throws -> Checkpoint?

    /// Saves a checkpoint.
    ///
    /// - Throws: ``TroupeError/Code/fenced`` if the checkpoint's epoch is not the agent's current one.
    func save(_ checkpoint: Checkpoint) async throws

    /// Records a dead letter.
    func deadLetter(_ letter: DeadLetter) async throws
}
