/// One saved state of one agent.
public struct Checkpoint: Sendable, Hashable {
    /// Whose state this is.
    public var agent: AgentID
    /// The fencing token of the incarnation that wrote it (see ``Claim/epoch``).
    public var epoch: UInt64
    /// Increases by one with every checkpoint of the agent, across incarnations and processes.
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

/// A message set aside because it crashed its agent too many times, or could not be delivered at all.
public struct DeadLetter: Sendable, Hashable {
    /// The agent that could not handle it.
    public var agent: AgentID
    /// The encoded message, so that it can be inspected or sent again.
    public var message: [UInt8]
    /// The last error it caused.
    public var error: String
    /// How many deliveries crashed the agent.
    public var failures: Int
    /// The durable message's row, removed from the mailbox in the same transaction; `nil` for in-memory messages.
    public var messageID: Int64?

    /// Creates a dead letter.
    public init(agent: AgentID, message: [UInt8], error: String, failures: Int, messageID: Int64? = nil) {
        self.agent = agent
        self.message = message
        self.error = error
        self.failures = failures
        self.messageID = messageID
    }
}

/// A message kept by the store until its recipient commits having handled it (``Durability/durable`` agents).
public struct StoredMessage: Sendable, Hashable {
    /// The store's identifier; also the delivery order.
    public var id: Int64
    /// The recipient's name.
    public var recipient: String
    /// The sender's name, or `nil` when sent from outside the run.
    public var sender: String?
    /// The encoded message.
    public var payload: [UInt8]
    /// The sender's trace context when the run traced (see ``SentMessage/trace``), so that a message handled after
    /// a crash and resume continues its sender's trace; `nil` otherwise.
    public var trace: String?

    /// Creates a stored message.
    public init(id: Int64, recipient: String, sender: String?, payload: [UInt8], trace: String? = nil) {
        self.id = id
        self.recipient = recipient
        self.sender = sender
        self.payload = payload
        self.trace = trace
    }
}

/// A message to a durable recipient that a ``Commit`` stores.
public struct SentMessage: Sendable, Hashable {
    /// The recipient's name.
    public var recipient: String
    /// The encoded message.
    public var payload: [UInt8]
    /// The sender's trace context, when the run traces: the fields its tracer injects (W3C `traceparent` and
    /// `tracestate` with an OpenTelemetry tracer) as a JSON object. A store keeps it as it is and hands it back with
    /// the message (``StoredMessage/trace``); `nil` when the run does not trace.
    public var trace: String?

    /// Creates a message to store.
    public init(to recipient: String, payload: [UInt8], trace: String? = nil) {
        self.recipient = recipient
        self.payload = payload
        self.trace = trace
    }
}

/// One agent to claim in a batch (``CheckpointStore/claim(_:)``).
public struct ClaimRequest: Sendable, Hashable {
    /// The agent.
    public var agent: AgentID
    /// The agent's Swift type name, recorded for operators.
    public var type: String
    /// The agent's durability, recorded for operators.
    public var durability: Durability
    /// The incarnation's number in this process.
    public var incarnation: UInt64

    /// Creates a request.
    public init(agent: AgentID, type: String, durability: Durability, incarnation: UInt64) {
        self.agent = agent
        self.type = type
        self.durability = durability
        self.incarnation = incarnation
    }
}

/// What a store hands an incarnation that claims its agent.
public struct Claim: Sendable {
    /// The incarnation's fencing token: larger than every earlier incarnation's, in this process or any before it.
    public var epoch: UInt64
    /// The agent's latest checkpoint, if any.
    public var latest: Checkpoint?
    /// Durable messages to the agent accepted under an earlier lease of the run (by a process that died, or put
    /// back by an operator) and not committed: the claim adopts them into the current lease, so each is returned
    /// once per lease, in delivery order. Messages accepted under the current lease were delivered live and are
    /// never returned, whatever their ids.
    public var pending: [StoredMessage]
    /// Results of durable steps recorded by units of work not committed yet, by step key.
    public var steps: [String: [UInt8]]

    /// Creates a claim.
    public init(epoch: UInt64, latest: Checkpoint?, pending: [StoredMessage] = [], steps: [String: [UInt8]] = [:]) {
        self.epoch = epoch
        self.latest = latest
        self.pending = pending
        self.steps = steps
    }
}

/// One atomic step of an agent: its new state, the durable messages it has handled, and the messages it sent.
///
/// A store applies a commit entirely or not at all. For a ``Durability/durable`` agent this is what makes each
/// message's effect happen exactly once: the state that includes the effect, the removal of the message from the
/// inbox and the messages sent because of it become visible together.
public struct Commit: Sendable {
    /// The run.
    public var run: RunID
    /// The committing agent, or `nil` for messages sent from outside the run.
    public var agent: AgentID?
    /// The committing incarnation's fencing token.
    public var epoch: UInt64
    /// The new state, if it changed.
    public var checkpoint: Checkpoint?
    /// Durable messages handled; removed from the agent's inbox.
    public var consumed: [Int64]
    /// Messages to durable recipients, to be stored, in the order sent.
    public var sent: [SentMessage]
    /// Wait until the commit is on disk (`fsync`), not only in the database.
    public var sync: Bool
    /// Units of work this commit finishes: their recorded steps are deleted with it (keys `SCOPE/…`).
    public var finishedSteps: [String]

    /// Creates a commit.
    public init(
        run: RunID,
        agent: AgentID?,
        epoch: UInt64,
        checkpoint: Checkpoint? = nil,
        consumed: [Int64] = [],
        sent: [SentMessage] = [],
        sync: Bool = false,
        finishedSteps: [String] = []
    ) {
        self.finishedSteps = finishedSteps
        self.run = run
        self.agent = agent
        self.epoch = epoch
        self.checkpoint = checkpoint
        self.consumed = consumed
        self.sent = sent
        self.sync = sync
    }
}

extension Commit {
    /// The units of work a commit finishes, whose recorded steps it deletes: `m<id>` for each durable message
    /// consumed, `c<sequence>` for the stretch since checkpoint `sequence`, and the scopes of the signals taken.
    /// Built with one allocation: it is on every commit's path.
    static func finishedScopes(consumed: [Int64], sequence: UInt64, signals: [String]) -> [String] {
        var scopes: [String] = []
        scopes.reserveCapacity(consumed.count + 1 + signals.count)
        for id in consumed { scopes.append("m\(id)") }
        scopes.append("c\(sequence)")
        scopes.append(contentsOf: signals)
        return scopes
    }
}

/// A run as a store records it.
public struct RunRecord: Sendable, Hashable {
    /// The run.
    public var id: RunID
    /// The blueprint's name.
    public var blueprint: String
    /// The names of the blueprint's agents. When a run is resumed, durable messages to any other name have no
    /// recipient any more: the store sets them aside as dead letters.
    public var agents: [String]
    /// The blueprint's parameters, as the operator gave them, so that a resume can rebuild the same tree.
    public var parameters: [String: String]
    /// The run's default durability (``Run/Configuration/durability``), so that a resume uses the same.
    public var durability: Durability?

    /// Creates a record.
    public init(
        id: RunID,
        blueprint: String,
        agents: [String] = [],
        parameters: [String: String] = [:],
        durability: Durability? = nil
    ) {
        self.id = id
        self.blueprint = blueprint
        self.agents = agents
        self.parameters = parameters
        self.durability = durability
    }
}

/// How a run ended, as a store records it.
public enum RunOutcome: String, Sendable {
    /// The tree returned after a graceful shutdown.
    case stopped
    /// The root supervisor gave up (escalation) or the run failed.
    case failed
    /// Every agent finished.
    case completed
    /// An operator cancelled it.
    case cancelled
}

/// Where agents' checkpoints, durable messages, dead letters and events are kept.
///
/// The engine calls a store from many agents at once. ``InMemoryCheckpointStore`` keeps everything in memory (and
/// is the reference for the rules below); `SQLiteStore` in the `TroupeSQLite` module makes them survive the
/// process.
///
/// Fencing is the store's job: every incarnation ``claim(_:type:durability:incarnation:)``s its agent and receives an
/// epoch larger than any before; a ``commit(_:)`` (or ``recordStep(_:epoch:key:result:)``) carrying an older epoch
/// is rejected with ``TroupeError/Code/fenced`` *by the store's own transaction*, so that a late write from an
/// abandoned incarnation cannot overwrite its successor's progress, whatever process it comes from. One process at
/// a time drives a run: ``attach(_:)`` takes the run's lease; a store instance whose lease was taken over rejects
/// its writes with ``TroupeError/Code/leaseHeld`` (every one of them, not only the first) and reports the loss
/// through ``leaseLoss(of:)``, so that the run stops instead of working unfenced.
///
/// Message identifiers are opaque `Int64`s, increasing in delivery order within a run and never reused, not even
/// after the inbox drains or across resumes: durable steps are filed under them. The engine makes no other
/// assumption about them (any positive value is fine). The conformance suite in `TroupeTestKit` (`StoreConformance`) is the definition of
/// these rules; every store runs it.
public protocol CheckpointStore: Sendable {
    /// Starts driving a run: records it if it is new, or takes it over when it is resumed.
    ///
    /// - Returns: `true` if the store already knew the run (a resume), `false` if it is new.
    /// - Throws: ``TroupeError/Code/leaseHeld`` if another live process drives the run.
    func attach(_ run: RunRecord) async throws -> Bool

    /// Records how a run ended and gives up its lease.
    func detach(_ run: RunID, outcome: RunOutcome, error: String?) async

    /// Makes a new incarnation the agent's current one.
    ///
    /// - Parameters:
    ///   - agent: The agent.
    ///   - type: The agent's Swift type name, recorded for operators.
    ///   - durability: The agent's durability, recorded for operators.
    ///   - incarnation: The incarnation's number in this process.
    /// - Returns: The incarnation's epoch, the latest checkpoint and, on the first claim after a resume, the
    ///   durable messages waiting for it.
    func claim(_ agent: AgentID, type: String, durability: Durability, incarnation: UInt64) async throws -> Claim

    /// Makes a new incarnation of each agent its current one, as ``claim(_:type:durability:incarnation:)`` would
    /// for each in order, and returns their claims in the same order.
    ///
    /// A supervisor starting many persisting children at once (a run's start or resume) claims them ahead of their
    /// starts, up to 4,096 per call, while the previous batch starts. A store should do it in few transactions with
    /// set-based statements; the default claims one by one. If it throws, none of the incarnations starts, and a
    /// claim that did happen is superseded by the agent's next.
    func claim(_ requests: [ClaimRequest]) async throws -> [Claim]

    /// Applies a commit atomically.
    ///
    /// The commit is handed over (`consuming`): a store that keeps it until its transaction runs takes it without a
    /// copy. A store may declare the parameter plain, as any other; it then borrows it.
    ///
    /// - Returns: The identifiers of the stored ``Commit/sent`` messages, in order.
    /// - Throws: ``TroupeError/Code/fenced`` if the epoch is not the agent's current one, and storage errors;
    ///   nothing of the commit is applied then.
    func commit(_ commit: consuming Commit) async throws -> [Int64]

    /// Records a dead letter, removing its durable message in the same step.
    func deadLetter(_ letter: DeadLetter) async throws

    /// Records the result of a durable step (``AgentContext/step(_:_:)``) at once, in its own transaction.
    ///
    /// - Throws: ``TroupeError/Code/fenced`` if `epoch` is not the agent's current one.
    func recordStep(_ agent: AgentID, epoch: UInt64, key: String, result: [UInt8]) async throws

    /// Appends an event to the run's durable event log. Called on the engine's threads: must not block.
    func record(_ event: Event)

    /// Waits until this store instance loses `run`'s lease to another process, and says why. Returns `nil` if
    /// the waiting task is cancelled first. Stores whose lease cannot be taken over never return otherwise.
    func leaseLoss(of run: RunID) async -> TroupeError?

    /// Whether the store keeps an event log. When `false`, the run does not hand it events at all, which keeps
    /// the engine's event path free when nobody listens.
    var recordsEvents: Bool { get }
}

extension CheckpointStore {
    /// Stores keep an event log unless they say otherwise.
    public var recordsEvents: Bool { true }

    /// A lease that cannot be taken over is never lost: waits until cancelled.
    public func leaseLoss(of run: RunID) async -> TroupeError? {
        await OneShot<TroupeError>().wait()
    }

    /// Claims one agent after the other.
    public func claim(_ requests: [ClaimRequest]) async throws -> [Claim] {
        var claims: [Claim] = []
        claims.reserveCapacity(requests.count)
        for request in requests {
            claims.append(
                try await claim(
                    request.agent,
                    type: request.type,
                    durability: request.durability,
                    incarnation: request.incarnation
                )
            )
        }
        return claims
    }
}
