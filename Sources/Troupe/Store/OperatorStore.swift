public import FoundationEssentials

// What operators ask of a store, and the queue through which they steer a live run. The engine owns these
// contracts; each backend (the in-memory store here, SQLite and others in their own modules) implements them and
// passes `StoreConformance` in TroupeTestKit. The `troupe` CLI talks to nothing else.

/// A run as operators see it.
public struct RunSummary: Sendable, Codable, Hashable {
    /// The run.
    public var id: RunID
    /// The blueprint's name.
    public var blueprint: String
    /// Where the run is in its life. A run whose process died without recording an ending is ``RunStatus/crashed``.
    public var status: RunStatus
    /// The default durability it was started with (`nil` when it was not recorded).
    public var durability: Durability?
    /// The blueprint's parameters.
    public var parameters: [String: String]
    /// When it was created.
    public var createdAt: Date
    /// When it last ended.
    public var endedAt: Date?
    /// Why it failed, or where a fork came from.
    public var error: String?
    /// The process driving it, if one does or did until it crashed.
    public var owner: Owner?
    /// How many agents it has recorded.
    public var agents: Int
    /// How many restarts its agents have had in all.
    public var restarts: Int
    /// Its lease epoch: grows with every process that takes the run over (`nil` where the store does not say).
    public var lease: Int64?

    /// The process that drives a run.
    public struct Owner: Sendable, Codable, Hashable {
        /// Its process identifier.
        public var pid: Int64
        /// Its host name.
        public var host: String
        /// Its last heartbeat.
        public var heartbeatAt: Date?
        /// Whether it is alive: on this host, the process exists; on others, its heartbeat is recent (on a
        /// ``WorkerPool``: its worker holds its liveness lock and its heartbeat is not stale).
        public var alive: Bool
        /// Its worker, on a store shared by workers (``WorkerPool``); `nil` elsewhere.
        public var worker: Int64?

        /// Creates an owner.
        public init(pid: Int64, host: String, heartbeatAt: Date?, alive: Bool, worker: Int64? = nil) {
            self.pid = pid
            self.host = host
            self.heartbeatAt = heartbeatAt
            self.alive = alive
            self.worker = worker
        }
    }

    /// Whether a live process drives the run now.
    public var isDriven: Bool { owner?.alive == true }

    /// Creates a summary.
    public init(
        id: RunID,
        blueprint: String,
        status: RunStatus,
        durability: Durability?,
        parameters: [String: String],
        createdAt: Date,
        endedAt: Date?,
        error: String?,
        owner: Owner?,
        agents: Int,
        restarts: Int,
        lease: Int64? = nil
    ) {
        self.lease = lease
        self.id = id
        self.blueprint = blueprint
        self.status = status
        self.durability = durability
        self.parameters = parameters
        self.createdAt = createdAt
        self.endedAt = endedAt
        self.error = error
        self.owner = owner
        self.agents = agents
        self.restarts = restarts
    }
}

/// An agent as operators see it: its record, its latest checkpoint and the durable messages waiting for it.
public struct AgentSummary: Sendable, Codable, Hashable {
    /// The agent's name.
    public var name: String
    /// Its Swift type.
    public var type: String
    /// Its durability.
    public var durability: Durability
    /// What it is doing, by its last event.
    public var status: AgentStatus
    /// Its current fencing token.
    public var epoch: UInt64
    /// How many times it has been restarted.
    public var restarts: Int
    /// Its last error.
    public var lastError: String?
    /// Its latest checkpoint's sequence number.
    public var lastCheckpoint: UInt64?
    /// When its latest checkpoint was written.
    public var lastCheckpointAt: Date?
    /// Durable messages waiting for it.
    public var pendingMessages: Int

    /// Creates a summary.
    public init(
        name: String,
        type: String,
        durability: Durability,
        status: AgentStatus,
        epoch: UInt64,
        restarts: Int,
        lastError: String?,
        lastCheckpoint: UInt64?,
        lastCheckpointAt: Date?,
        pendingMessages: Int
    ) {
        self.name = name
        self.type = type
        self.durability = durability
        self.status = status
        self.epoch = epoch
        self.restarts = restarts
        self.lastError = lastError
        self.lastCheckpoint = lastCheckpoint
        self.lastCheckpointAt = lastCheckpointAt
        self.pendingMessages = pendingMessages
    }
}

/// One retained checkpoint, without its state.
public struct CheckpointRecord: Sendable, Codable, Hashable {
    /// Its sequence number.
    public var sequence: UInt64
    /// The epoch of the incarnation that wrote it.
    public var epoch: UInt64
    /// The state's version.
    public var stateVersion: Int
    /// When it was written.
    public var createdAt: Date
    /// The state's size.
    public var bytes: Int

    /// Creates a record.
    public init(sequence: UInt64, epoch: UInt64, stateVersion: Int, createdAt: Date, bytes: Int) {
        self.sequence = sequence
        self.epoch = epoch
        self.stateVersion = stateVersion
        self.createdAt = createdAt
        self.bytes = bytes
    }
}

/// A dead letter as operators list it, without its message.
public struct DeadLetterRecord: Sendable, Codable, Hashable {
    /// Its identifier, for `requeue` and `purge`.
    public var id: Int64
    /// The agent it could not be handled by.
    public var agent: String
    /// The last error it caused.
    public var error: String
    /// How many deliveries crashed the agent.
    public var failures: Int
    /// When it was set aside.
    public var createdAt: Date
    /// The message's size.
    public var bytes: Int

    /// Creates a record.
    public init(id: Int64, agent: String, error: String, failures: Int, createdAt: Date, bytes: Int) {
        self.id = id
        self.agent = agent
        self.error = error
        self.failures = failures
        self.createdAt = createdAt
        self.bytes = bytes
    }
}

/// What a prune removed, or would remove.
public struct PruneReport: Sendable, Codable, Hashable {
    /// Checkpoints.
    public var checkpoints: Int
    /// Events.
    public var events: Int

    /// Creates a report.
    public init(checkpoints: Int, events: Int) {
        self.checkpoints = checkpoints
        self.events = events
    }
}

/// A store's own health check.
public struct StoreHealth: Sendable, Codable, Hashable {
    /// What is wrong; empty when the store is healthy.
    public var problems: [String]
    /// Schema changes applied, oldest first.
    public var migrations: [String]
    /// Schema changes this build knows.
    public var known: [String]

    /// Creates a report.
    public init(problems: [String], migrations: [String], known: [String]) {
        self.problems = problems
        self.migrations = migrations
        self.known = known
    }
}

/// The live tree of a run, as its driving process last published it.
public struct TreeSnapshot: Sendable, Codable, Hashable {
    /// The root supervisor's children.
    public var nodes: [TreeNode]
    /// When it was published.
    public var at: Date

    /// Creates a snapshot.
    public init(nodes: [TreeNode], at: Date) {
        self.nodes = nodes
        self.at = at
    }

    /// Whether the tree has a child of that name, at any depth.
    public func contains(_ name: String) -> Bool {
        nodes.contains { $0.contains(name) }
    }
}

/// A child in a ``TreeSnapshot``.
public struct TreeNode: Sendable, Codable, Hashable {
    /// Its name.
    public var name: String
    /// Its Swift type, or `Supervisor`.
    public var type: String
    /// Its status.
    public var status: ChildInfo.Status
    /// Its latest incarnation.
    public var incarnation: UInt64
    /// Its restarts since its supervisor started.
    public var restarts: Int
    /// Messages waiting in its mailbox.
    public var mailboxDepth: Int
    /// Whether it is passivated.
    public var passivated: Bool
    /// What it waits for (a signal, a durable timer), if anything.
    public var waiting: Waiting?
    /// A supervisor's children.
    public var children: [TreeNode]

    /// Creates a node.
    public init(
        name: String,
        type: String,
        status: ChildInfo.Status,
        incarnation: UInt64,
        restarts: Int = 0,
        mailboxDepth: Int = 0,
        passivated: Bool = false,
        children: [TreeNode] = []
    ) {
        self.name = name
        self.type = type
        self.status = status
        self.incarnation = incarnation
        self.restarts = restarts
        self.mailboxDepth = mailboxDepth
        self.passivated = passivated
        self.children = children
    }

    /// The node of a child.
    public init(_ info: ChildInfo) {
        name = info.name
        type = info.typeName
        status = info.status
        incarnation = info.incarnation
        restarts = info.restarts
        mailboxDepth = info.mailboxDepth
        passivated = info.isPassivated
        waiting = info.waiting
        children = info.children.map(TreeNode.init)
    }

    /// Whether this node or one below it is named `name`.
    public func contains(_ name: String) -> Bool {
        self.name == name || children.contains { $0.contains(name) }
    }
}

/// The operator's view of a store: what runs there are and what they hold, and the maintenance verbs.
///
/// Everything here works whether or not a process drives the run; writes that must not race a live run (fork
/// reads only; ``deleteRuns(_:)`` refuses live runs) say so.
public protocol RunReadModel: Sendable {
    /// Where the store keeps its data, for messages (`'/srv/troupe.db'`).
    var location: String { get }

    /// Every run, newest first.
    func runs() async throws -> [RunSummary]

    /// One run.
    ///
    /// - Throws: ``TroupeError/Code/unknownRun``.
    func run(_ id: RunID) async throws -> RunSummary

    /// The agents a run has recorded, in name order.
    func agents(of run: RunID) async throws -> [AgentSummary]

    /// The retained checkpoints of an agent, oldest first, without their states.
    func checkpointHistory(of agent: AgentID) async throws -> [CheckpointRecord]

    /// The retained checkpoints of an agent, oldest first, with their states.
    func checkpoints(of agent: AgentID) async throws -> [Checkpoint]

    /// A run's logged events after `since` (a ``EventRecord/sequence``), oldest first, at most `limit`, of one
    /// agent if `agent` is given.
    func events(of run: RunID, since: Int64, agent: String?, limit: Int) async throws -> [EventRecord]

    /// The last `count` logged events of a run (of one agent if given), oldest first.
    func lastEvents(of run: RunID, count: Int, agent: String?) async throws -> [EventRecord]

    /// Wakes a follower of `run`'s event log (`troupe events --follow`): an element when new events may have been
    /// logged. A store that can tell (PostgreSQL's notifications) yields soon after the commit that wrote them, and
    /// at least once a second; the default yields every 200 ms. Ends when the caller stops iterating.
    func eventHints(of run: RunID) -> AsyncStream<Void>

    /// A run's dead letters, oldest first, without their messages.
    func deadLetters(of run: RunID) async throws -> [DeadLetterRecord]

    /// The tree its driving process last published, if any.
    func treeSnapshot(of run: RunID) async throws -> TreeSnapshot?

    /// Moves dead letters (all of the run's, or those with `ids`) back into their agents' durable inboxes.
    ///
    /// - Returns: The agents they went back to, one entry per message.
    func requeueDeadLetters(of run: RunID, ids: [Int64]?) async throws -> [String]

    /// Deletes dead letters (all of the run's, or those with `ids`); returns how many.
    func purgeDeadLetters(of run: RunID, ids: [Int64]?) async throws -> Int

    /// Creates run `newRun`, stopped, as a consistent cut of `agent`'s run right after the commit that wrote its
    /// checkpoint `sequence`: that agent starts from exactly that checkpoint, each other agent from its latest
    /// committed by then (or from scratch if it had none then), and the durable messages in flight then (sent by
    /// then, not consumed by then) wait in the new run's inboxes, in delivery order, for its agents to adopt when it
    /// is resumed. A store orders commits to decide "by then" (not by clock time), and keeps consumed messages until
    /// no cut can need them. The original is untouched.
    ///
    /// - Throws: ``TroupeError/Code/unknownRun``, or ``TroupeError/Code/unknownChild`` when there is no such
    ///   checkpoint or when an agent's checkpoint from that moment was pruned (nothing is created then).
    func fork(_ agent: AgentID, sequence: UInt64, as newRun: RunID) async throws

    /// Deletes all but the last `keep` checkpoints of every agent, and events older than `eventsBefore`.
    func prune(keep: Int, eventsBefore: Date?, dryRun: Bool) async throws -> PruneReport

    /// Deletes runs and everything they stored, all or nothing.
    ///
    /// - Throws: ``TroupeError/Code/unknownRun``, or ``TroupeError/Code/leaseHeld`` when a live process drives one
    ///   of them; nothing is deleted then.
    func deleteRuns(_ ids: [RunID]) async throws

    /// Checks the store's own consistency.
    func check() async throws -> StoreHealth
}

/// An operator's command for a live run, queued in the run's store.
public struct OperatorCommand: Sendable, Codable, Hashable {
    /// What an operator asks.
    public enum Action: Sendable, Hashable {
        /// Stop the whole run: gracefully, then, after `grace`, by cancellation.
        case cancel(grace: Duration)
        /// Stop one agent through its shutdown ladder; it stays stopped until restarted.
        case stop(agent: String)
        /// Restart one agent, from its last checkpoint or (`fresh`) from its initial state.
        case restart(agent: String, fresh: Bool)
        /// Stop every agent gracefully, keeping the run and its process.
        case pause
        /// Start again the agents a pause stopped.
        case unpause
        /// Move dead letters (all, or those with `ids`) back into their agents' inboxes and restart those agents.
        case requeue(ids: [Int64]?)
        /// Deliver a message from outside the run to an agent (or a pool's next member): `message` is the JSON
        /// encoding of one of its message type's values. A durable agent's message is stored before the command is
        /// marked applied; another agent's is delivered if its mailbox has room, and refused if not.
        case send(agent: String, message: String)
        /// Deliver the signal `name` to an agent (``AgentContext/signal(_:as:timeout:)``): `value` is the JSON the
        /// agent decodes. A checkpointed or durable agent's signal is stored before the command is marked applied.
        case signal(agent: String, name: String, value: String)
        /// A queued command this build cannot read (another tool or version wrote it): refused with `reason`.
        case unrecognized(verb: String, reason: String)

        /// Its verb in the queue: `cancel` (with or without an agent), `restart`, `pause`, `unpause`, `requeue`,
        /// `send`, `signal`.
        public var verb: String {
            switch self {
            case .cancel, .stop: "cancel"
            case .restart: "restart"
            case .pause: "pause"
            case .unpause: "unpause"
            case .requeue: "requeue"
            case .send: "send"
            case .signal: "signal"
            case .unrecognized(let verb, _): verb
            }
        }

        /// The agent it concerns.
        public var agent: String? {
            switch self {
            case .stop(let agent), .restart(let agent, _), .send(let agent, _), .signal(let agent, _, _): agent
            default: nil
            }
        }

        /// Its arguments in the queue.
        public var arguments: [String: String] {
            switch self {
            case .cancel(let grace):
                ["grace": String(Double(grace.components.seconds) + Double(grace.components.attoseconds) / 1e18)]
            case .restart(_, let fresh): ["fresh": String(fresh)]
            case .requeue(let ids?): ["ids": ids.map(String.init).joined(separator: ",")]
            case .send(_, let message): ["message": message]
            case .signal(_, let name, let value): ["name": name, "value": value]
            default: [:]
            }
        }

        /// Reads a queued command. Never fails: what it cannot read becomes ``unrecognized(verb:reason:)``, so a
        /// command written by another tool is refused with its reason and never stops the run that reads it.
        public init(verb: String, agent: String?, arguments: [String: String]) {
            switch (verb, agent) {
            case ("cancel", let agent?):
                self = .stop(agent: agent)
            case ("cancel", nil):
                let text = arguments["grace"] ?? "10"
                guard let seconds = Double(text), seconds.isFinite, seconds >= 0, seconds <= 315_576_000 else {
                    self = .unrecognized(verb: verb, reason: "grace must be 0 to 10 years in seconds, not '\(text)'")
                    return
                }
                self = .cancel(grace: .milliseconds(Int64((seconds * 1000).rounded())))
            case ("restart", let agent?):
                self = .restart(agent: agent, fresh: arguments["fresh"] == "true")
            case ("restart", nil):
                self = .unrecognized(verb: verb, reason: "restart needs an agent")
            case ("send", let agent?):
                guard let message = arguments["message"] else {
                    self = .unrecognized(verb: verb, reason: "send needs a message")
                    return
                }
                self = .send(agent: agent, message: message)
            case ("send", nil):
                self = .unrecognized(verb: verb, reason: "send needs an agent")
            case ("signal", let agent?):
                guard let name = arguments["name"], let value = arguments["value"] else {
                    self = .unrecognized(verb: verb, reason: "signal needs a name and a value")
                    return
                }
                self = .signal(agent: agent, name: name, value: value)
            case ("signal", nil):
                self = .unrecognized(verb: verb, reason: "signal needs an agent")
            case ("pause", _): self = .pause
            case ("unpause", _): self = .unpause
            case ("requeue", _):
                guard let text = arguments["ids"] else {
                    self = .requeue(ids: nil)
                    return
                }
                let parts = text.split(separator: ",")
                let ids = parts.compactMap { Int64($0) }
                guard ids.count == parts.count else {
                    self = .unrecognized(verb: verb, reason: "ids must be numbers separated by commas, not '\(text)'")
                    return
                }
                self = .requeue(ids: ids)
            default:
                self = .unrecognized(verb: verb, reason: "unknown command '\(verb)'")
            }
        }
    }

    /// How a command ended.
    public struct Result: Sendable, Codable, Hashable, CustomStringConvertible {
        /// Whether it took effect.
        public enum Outcome: String, Sendable, Codable, Hashable {
            /// It took effect.
            case applied
            /// It was not carried out: it made no sense for the run as it was (unpause of a run not paused).
            case refused
            /// It was tried and failed (the agent did not exist, storage failed).
            case failed
        }

        /// Whether it took effect.
        public var outcome: Outcome
        /// What happened, for the operator.
        public var message: String

        /// Creates a result.
        public init(_ outcome: Outcome, _ message: String) {
            self.outcome = outcome
            self.message = message
        }

        public var description: String { outcome == .applied ? message : "\(outcome.rawValue): \(message)" }
    }

    /// Who asked, and why: recorded with the command and in the run's event log when it is applied.
    public struct Origin: Sendable, Codable, Hashable {
        /// Who: `USER@HOST (pid N)` for the CLI, `console USER@HOST` for `troupe serve`.
        public var by: String
        /// Why, in the operator's words (`--reason`), if given.
        public var reason: String?

        /// Creates an origin.
        public init(by: String, reason: String? = nil) {
            self.by = by
            self.reason = reason
        }

        /// The keys under which a store keeps it beside the action's arguments.
        public var arguments: [String: String] {
            var arguments = ["by": by]
            arguments["reason"] = reason
            return arguments
        }

        /// Reads it from stored arguments; `nil` if none was recorded.
        public init?(arguments: [String: String]) {
            guard let by = arguments["by"] else { return nil }
            self.init(by: by, reason: arguments["reason"])
        }
    }

    /// Its identifier in the queue.
    public var id: Int64
    /// The run.
    public var run: RunID
    /// What it asks.
    public var action: Action
    /// Who asked and why, when the command says.
    public var origin: Origin?
    /// When it was queued.
    public var createdAt: Date
    /// When the driving process applied it.
    public var appliedAt: Date?
    /// How it ended, once applied.
    public var result: Result?

    /// Creates a command.
    public init(
        id: Int64,
        run: RunID,
        action: Action,
        origin: Origin? = nil,
        createdAt: Date,
        appliedAt: Date? = nil,
        result: Result? = nil
    ) {
        self.id = id
        self.run = run
        self.action = action
        self.origin = origin
        self.createdAt = createdAt
        self.appliedAt = appliedAt
        self.result = result
    }

    private enum CodingKeys: String, CodingKey {
        case id, run, verb, agent, arguments, by, reason, createdAt, appliedAt, result
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(Int64.self, forKey: .id)
        run = try container.decode(RunID.self, forKey: .run)
        action = Action(
            verb: try container.decode(String.self, forKey: .verb),
            agent: try container.decodeIfPresent(String.self, forKey: .agent),
            arguments: try container.decodeIfPresent([String: String].self, forKey: .arguments) ?? [:]
        )
        origin = try container.decodeIfPresent(String.self, forKey: .by).map {
            Origin(by: $0, reason: try container.decodeIfPresent(String.self, forKey: .reason))
        }
        createdAt = try container.decode(Date.self, forKey: .createdAt)
        appliedAt = try container.decodeIfPresent(Date.self, forKey: .appliedAt)
        result = try container.decodeIfPresent(Result.self, forKey: .result)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(run, forKey: .run)
        try container.encode(action.verb, forKey: .verb)
        try container.encodeIfPresent(action.agent, forKey: .agent)
        try container.encode(action.arguments, forKey: .arguments)
        try container.encodeIfPresent(origin?.by, forKey: .by)
        try container.encodeIfPresent(origin?.reason, forKey: .reason)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encodeIfPresent(appliedAt, forKey: .appliedAt)
        try container.encodeIfPresent(result, forKey: .result)
    }
}

extension RunReadModel {
    /// Every 200 ms, for stores that cannot tell when events are logged.
    public func eventHints(of run: RunID) -> AsyncStream<Void> {
        AsyncStream { continuation in
            let task = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(200))
                    continuation.yield()
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}

/// The queue through which operators steer a live run, and what the run's process publishes back.
///
/// Any process may ``enqueue(_:for:)``; the process driving the run reads ``pendingCommands(of:)``, applies each
/// command (the run's controller does, for every ``Run`` whose store is a control queue) and ``complete(_:with:)``s
/// it. Commands queued while no process drives the run wait for its next resume.
public protocol ControlQueue: Sendable {
    /// Queues a command for `run`, with who asked and why (``OperatorCommand/Origin``, kept with the command);
    /// returns its identifier.
    ///
    /// - Throws: ``TroupeError/Code/unknownRun``.
    func enqueue(_ action: OperatorCommand.Action, for run: RunID, origin: OperatorCommand.Origin?) async throws -> Int64

    /// Every command of `run`, oldest first.
    func commands(of run: RunID) async throws -> [OperatorCommand]

    /// The commands of `run` not applied yet, oldest first, then each new one as it is queued (within a fraction
    /// of a second), each once. The sequence ends when the reading task is cancelled.
    func pendingCommands(of run: RunID) -> AsyncThrowingStream<OperatorCommand, any Error>

    /// Records that a command was applied, and how it ended.
    func complete(_ command: Int64, with result: OperatorCommand.Result) async throws

    /// Publishes the live tree of a run this process drives (see ``RunReadModel/treeSnapshot(of:)``).
    func publishTree(_ nodes: [TreeNode], of run: RunID) async throws

    /// Records whether an operator paused the run this process drives (``RunStatus/paused``).
    func setPaused(_ paused: Bool, run: RunID) async throws
}

extension ControlQueue {
    /// Sends `message` to `agent` (or a pool) of `run` from outside the run, wherever the run is driven: this
    /// process, another one, or a worker on another host. It travels as a ``OperatorCommand/Action/send(agent:message:)``
    /// command, JSON-encoded; the driving process decodes it as the agent's message type and delivers it (a durable
    /// agent's message is stored first), and a run that no process drives gets it at its next resume.
    ///
    /// ```swift
    /// let command = try await store.send(Orders.Message.cancel(orderID), to: "orders", in: "run-orders")
    /// ```
    ///
    /// - Returns: The command's id; ``commands(of:)`` shows its result once applied.
    /// - Throws: ``TroupeError/Code/unknownRun``, the store's errors, and the encoder's.
    /// Queues a command that says nothing of who asked.
    public func enqueue(_ action: OperatorCommand.Action, for run: RunID) async throws -> Int64 {
        try await enqueue(action, for: run, origin: nil)
    }

    @discardableResult
    public func send<Message: Encodable>(_ message: Message, to agent: String, in run: RunID) async throws -> Int64 {
        let json = String(decoding: try JSONEncoder().encode(message), as: UTF8.self)
        return try await enqueue(.send(agent: agent, message: json), for: run)
    }
}

/// Everything the engine and the `troupe` CLI need of a store: the engine's contract, the operator's read model
/// and the control queue. A backend that implements this and passes `StoreConformance` serves every verb.
public protocol OperatorStore: CheckpointStore, RunReadModel, ControlQueue {
    /// Releases the store's resources (connections, threads). Later calls fail.
    func close() async
}

extension TroupeError {
    /// The error for a run a store does not have.
    public static func unknownRun(_ id: RunID, in location: String) -> TroupeError {
        TroupeError(
            .unknownRun,
            "no run '\(id)' in \(location). `troupe ps` lists the runs; pass --database if it is in another store."
        )
    }
}
