import FoundationEssentials

/// A long-running unit of work with typed state and a typed mailbox, run and restarted by a ``Supervisor``.
///
/// An agent value is its configuration: immutable, shared by every incarnation. Everything that changes lives in
/// ``State``, which the engine hands to the agent `inout` and checkpoints, so that a restarted agent resumes where
/// its last incarnation left off instead of starting over.
///
/// Two styles are first class, and the compiler holds an agent to the one it declares:
///
/// - **Handler** style: conform to ``HandlerAgent`` and implement ``HandlerAgent/handle(_:state:context:)``. The
///   engine owns the loop: it takes messages from the mailbox, calls the handler for each, and keeps the state from
///   the last message handled successfully. A handler that throws leaves the state as it was before that message;
///   the message is retried on the next incarnation, and set aside as a dead letter if it keeps crashing the agent.
///   A `handle` whose signature is not exactly the protocol's does not compile.
/// - **Loop** style: conform to `Agent` and implement ``run(state:context:)``. The agent owns its loop (a poller, a
///   ticker, a stream consumer) and calls ``AgentContext/checkpoint(_:)`` when it chooses. It reads its mailbox, if
///   it wants to, through ``AgentContext/messages``. An `Agent` without `run` does not compile.
///
/// ```swift
/// struct Counter: HandlerAgent {
///     struct State: AgentState { var total = 0 }
///     enum Message: Codable, Sendable { case add(Int), report(Reply<Int>) }
///
///     func handle(_ message: Message, state: inout State, context: AgentContext<Self>) async throws {
///         switch message {
///         case .add(let n): state.total += n
///         case .report(let reply): reply(state.total)
///         }
///     }
/// }
/// ```
///
/// Resources that an incarnation must release on every exit path (a connection, a file, a subscription) are
/// acquired in ``setUp(context:)`` and released in ``tearDown(_:reason:context:)``, which the engine calls whether
/// the incarnation returned, threw, was cancelled or was stopped.
///
/// ## Topics
/// ### Running
/// - ``run(state:context:)``
/// - ``HandlerAgent``
/// ### State
/// - ``initialState()``
/// - ``stateVersion``
/// - ``migrate(_:from:)``
/// ### Resources
/// - ``setUp(context:)``
/// - ``tearDown(_:reason:context:)``
public protocol Agent: Sendable {
    /// What the agent remembers between messages and across restarts. Checkpoints store it.
    associatedtype State: Codable & Sendable = Stateless
    /// What other agents send it.
    associatedtype Message: Codable & Sendable = Never
    /// What ``setUp(context:)`` acquires for one incarnation; available as ``AgentContext/resources``.
    associatedtype Resources: Sendable = Void

    /// The state of a brand-new agent, used when there is no checkpoint to resume from.
    func initialState() -> State

    /// The version of ``State``'s encoding, stored with every checkpoint. Bump it when `State` changes shape, and
    /// say how to read the older versions in ``migrate(_:from:)``.
    static var stateVersion: Int { get }

    /// Reads a checkpoint written with an older ``stateVersion``.
    ///
    /// Called when an agent resumes from a checkpoint whose version is below ``stateVersion``: decode `stored` as the
    /// type that version saved, and return the state it becomes. The agent starts from it, and its next commit
    /// checkpoints it with the current version. Return `nil` (the default) where there is no path from `version`:
    /// the agent is then quarantined, with an error naming the agent and both versions, and its checkpoint is kept.
    /// A checkpoint from a *newer* version is never migrated (it is quarantined). To go through several versions,
    /// call the steps in turn:
    ///
    /// ```swift
    /// static var stateVersion: Int { 3 }
    ///
    /// static func migrate(_ stored: StoredValue, from version: Int) throws -> State? {
    ///     switch version {
    ///     case 1: State(v2: V2(v1: try stored.decode(V1.self)))
    ///     case 2: State(v2: try stored.decode(V2.self))
    ///     default: nil
    ///     }
    /// }
    /// ```
    ///
    /// - Throws: An error the agent is quarantined with, like `nil`, but saying what failed.
    static func migrate(_ stored: StoredValue, from version: Int) throws -> State?

    /// Reads a durable message that no longer decodes as ``Message`` (its type changed shape since it was stored).
    ///
    /// Return the message it becomes, or `nil` (the default) to set it aside as a dead letter, with an error naming
    /// the message, the agent and the type.
    static func migrate(message stored: StoredValue) throws -> Message?

    /// Runs one incarnation of the agent.
    ///
    /// A loop-style agent implements it; a ``HandlerAgent`` gets the engine's handler loop, which calls
    /// ``HandlerAgent/handle(_:state:context:)`` for each message until the agent is asked to stop, and holds no
    /// task while the mailbox is empty (see ``AgentContext/handleMessages(state:)``).
    ///
    /// - Parameters:
    ///   - state: The state to resume from: the last checkpoint, or ``initialState()``. When `run` returns, the
    ///     engine checkpoints the final value.
    ///   - context: The agent's view of the run.
    /// - Throws: Any error crashes this incarnation; its supervisor decides whether to restart it.
    /// - Important: Return promptly when ``AgentContext/isStopping`` becomes true or the task is cancelled.
    ///   ``AgentContext/sleep(for:)`` and ``AgentContext/messages`` do this for you.
    func run(state: inout State, context: AgentContext<Self>) async throws

    /// Acquires what this incarnation needs before it handles anything. Called at every start and restart.
    ///
    /// Also the place to subscribe to topics. If it throws, the incarnation crashes and
    /// ``tearDown(_:reason:context:)`` is not called (there is nothing to release).
    ///
    /// - Important: Like OTP's `init`, `setUp` runs inside the supervisor's loop, and the supervisor starts its next
    ///   child only once it has returned: keep it short, and do not wait in it for a sibling that starts after this
    ///   agent (a ``AgentContext/call(_:timeout:_:)-(String,_,_)`` to one times out). Long work belongs in ``run(state:context:)``
    ///   or ``HandlerAgent/handle(_:state:context:)``.
    func setUp(context: AgentContext<Self>) async throws -> Resources

    /// Releases what ``setUp(context:)`` acquired. Called exactly once per incarnation that set up, on every
    /// exit path: normal return, thrown error, cancellation and shutdown.
    ///
    /// - Important: When `reason` is ``ExitReason/cancelled`` the task is already cancelled, so awaiting
    ///   cancellable work here returns early; release with non-cancellable calls.
    func tearDown(_ resources: Resources, reason: ExitReason, context: AgentContext<Self>) async
}

/// An agent in handler style: the engine runs the loop and calls ``handle(_:state:context:)`` for each message.
///
/// Its ``Agent/run(state:context:)`` is the engine's handler loop, which *passivates*: an idle agent holds no task.
/// An agent that needs to do something before or after handling (finish once a count is reached, say) implements
/// `run` itself and calls ``AgentContext/handleMessages(state:)`` from it.
public protocol HandlerAgent: Agent {
    /// What other agents send it: the type ``handle(_:state:context:)`` takes (a nested `Message` type, or any
    /// other `Codable & Sendable` type the handler names). Restated without `Agent`'s default (`Never`), so that
    /// it is inferred from the handler.
    associatedtype Message
    /// What it remembers: the type ``handle(_:state:context:)`` takes `inout` (``Stateless`` for none). Restated
    /// without `Agent`'s default, so that it is inferred from the handler.
    associatedtype State
    /// Handles one message.
    ///
    /// - Parameters:
    ///   - message: The message, delivered in the order its sender sent it.
    ///   - state: The agent's state; changes are kept only if the handler returns normally.
    ///   - context: The agent's view of the run.
    /// - Throws: Any error crashes this incarnation. The state stays as it was before the message; the message is
    ///   delivered again to the next incarnation (see ``AgentContext/deliveryAttempt``) and becomes a dead letter
    ///   after ``AgentOptions/maxDeliveryFailures`` crashes.
    func handle(_ message: Message, state: inout State, context: AgentContext<Self>) async throws
}

extension HandlerAgent {
    /// The engine's handler loop, which passivates an idle agent.
    @inlinable
    public func run(state: inout State, context: AgentContext<Self>) async throws {
        try await context.passivatingHandlerLoop(state: &state)
    }
}

extension Agent {
    public static var stateVersion: Int { 1 }

    public static func migrate(_ stored: StoredValue, from version: Int) throws -> State? { nil }

    public static func migrate(message stored: StoredValue) throws -> Message? { nil }

    public func tearDown(_ resources: Resources, reason: ExitReason, context: AgentContext<Self>) async {}
}

extension Agent where Resources == Void {
    public func setUp(context: AgentContext<Self>) async throws {}
}

extension Agent where State: AgentState {
    public func initialState() -> State { State() }
}

/// A state type with a natural starting value, so its agent needs no ``Agent/initialState()``.
public protocol AgentState: Codable, Sendable {
    /// The state of a brand-new agent.
    init()
}

/// The state of an agent that keeps none.
public struct Stateless: AgentState, Hashable {
    /// Creates the (only) empty state.
    public init() {}
}

/// How an incarnation of an agent or supervisor ended.
public enum ExitReason: Sendable, CustomStringConvertible {
    /// It returned on its own, without being asked to stop.
    case normal
    /// It stopped because it was asked to (graceful shutdown, or terminated by its supervisor or an operator).
    case stopped
    /// Its task was cancelled (the second rung of the shutdown ladder) and it ended.
    case cancelled
    /// It threw an error.
    case failed(any Error)

    /// Whether the exit is abnormal: `failed`. A transient child is restarted only after an abnormal exit.
    public var isFailure: Bool {
        if case .failed = self { return true }
        return false
    }

    public var description: String {
        switch self {
        case .normal: "normal"
        case .stopped: "stopped"
        case .cancelled: "cancelled"
        case .failed(let error): "failed: \(error)"
        }
    }
}

/// A checkpointed state or a durable message as the store keeps it, for an agent's migrations
/// (``Agent/migrate(_:from:)``, ``Agent/migrate(message:)``).
public struct StoredValue: Sendable {
    /// The encoded value.
    public let bytes: [UInt8]

    /// Wraps encoded bytes.
    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// The value decoded as `type`: the type that wrote it (an older `State`, or a message's former shape).
    ///
    /// - Throws: `DecodingError` if it is no `type`.
    public func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try JSONDecoder().decode(type, from: Data(bytes))
    }
}
