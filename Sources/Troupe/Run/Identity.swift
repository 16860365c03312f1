/// The identity of one run of a blueprint.
public struct RunID: Hashable, Sendable, Codable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// The identifier's text, as shown by the CLI.
    public let rawValue: String

    /// Wraps an existing identifier.
    public init(_ rawValue: String) { self.rawValue = rawValue }

    public init(stringLiteral value: String) { self.rawValue = value }

    /// A new random identifier, such as `run-3f9c02ab`.
    public static func random() -> RunID {
        var generator = SystemRandomNumberGenerator()
        let bits = UInt32.random(in: .min ... .max, using: &generator)
        let hex = String(bits, radix: 16)
        return RunID("run-" + String(repeating: "0", count: 8 - hex.count) + hex)
    }

    public var description: String { rawValue }

    /// A run's identifier is its text, in JSON too.
    public init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(String.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

/// The identity of an agent: its run and its name, which is unique within the run.
///
/// An agent keeps its identity across restarts; each restart is a new *incarnation* (see
/// ``AgentContext/incarnation``), which checkpoint stores use as an epoch to fence out stale writers.
public struct AgentID: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The run the agent belongs to.
    public var run: RunID
    /// The agent's name within its run.
    public var name: String

    /// Creates an identity.
    public init(run: RunID, name: String) {
        self.run = run
        self.name = name
    }

    public var description: String { "\(run)/\(name)" }
}

/// How much of an agent's progress survives a restart or a crash of the process.
///
/// Stores that persist (the SQLite store) make ``checkpointed`` survive the process too. Chosen per blueprint, and
/// per child where a child overrides its blueprint; where neither chooses, the run's
/// (``Run/Configuration/durability``), which is ``checkpointed`` unless given, in the library as in `troupe run`.
public struct Durability: Hashable, Sendable, CustomStringConvertible, Codable {
    /// Reads a durability from its name: `ephemeral`, `checkpointed` or `durable`.
    public init?(_ name: String) {
        switch name {
        case "ephemeral": self = .ephemeral
        case "checkpointed": self = .checkpointed
        case "durable": self = .durable
        default: return nil
        }
    }

    private enum Value: Hashable, Sendable {
        case ephemeral, checkpointed, durable
    }

    private let value: Value
    private init(_ value: Value) { self.value = value }

    /// State is kept in memory only. A restarted incarnation resumes from the state after the last message its
    /// predecessor handled (handler style) or the last ``AgentContext/checkpoint(_:)`` (loop style); nothing
    /// survives the process. The fastest mode.
    public static let ephemeral = Durability(.ephemeral)

    /// State snapshots go to the run's ``CheckpointStore``: after every handled message (handler style), at every
    /// ``AgentContext/checkpoint(_:)`` (loop style), and when an incarnation stops. Messages stay in memory.
    public static let checkpointed = Durability(.checkpointed)

    /// Every message's effect happens exactly once, across agent crashes, restarts and the death of the process.
    ///
    /// A message sent to a durable agent is stored before `send` returns. After handling messages (handler
    /// style: a batch at a time; loop style: at every ``AgentContext/checkpoint(_:)``), the agent's new state,
    /// the removal of the handled messages from its inbox and every message it sent meanwhile are committed in
    /// one transaction; only then are the sent messages delivered. A crash before the commit leaves none of it:
    /// the messages are handled again, from the last committed state, and nothing they sent was seen. Requires a
    /// persistent store (`SQLiteStore`) to survive the process; the in-memory store gives the same semantics
    /// within one process.
    ///
    /// - Important: ``AgentContext/call(_:timeout:_:)-(String,_,_)``, ``AgentContext/publish(_:to:)`` and side effects outside
    ///   Troupe (HTTP calls, files) are not part of the transaction: they may happen again when a message is
    ///   handled again. Make them idempotent.
    public static let durable = Durability(.durable)

    /// Whether the state goes to the run's store (``checkpointed`` and ``durable``).
    @usableFromInline var persistsState: Bool { value != .ephemeral }

    public var description: String {
        switch value {
        case .ephemeral: "ephemeral"
        case .checkpointed: "checkpointed"
        case .durable: "durable"
        }
    }

    /// A durability is its name, in JSON too.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let name = try container.decode(String.self)
        guard let durability = Durability(name) else {
            throw DecodingError.dataCorruptedError(
                in: container,
                debugDescription: "'\(name)' is no durability (ephemeral, checkpointed or durable)"
            )
        }
        self = durability
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
