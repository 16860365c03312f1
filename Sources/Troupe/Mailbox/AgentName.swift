/// A typed name: an agent's name that only takes that agent's messages. Declare one next to the agent, name the
/// child with it, and send through it: a message of another type to it does not compile.
///
/// ```swift
/// let counter = AgentName<Counter>("counter")
///
/// let blueprint = Blueprint("counting") { Child(counter, Counter()) }
/// try await context.send(.add(5), to: counter)            // Counter.Message, checked by the compiler
/// let total = try await run.call(counter, timeout: .seconds(5)) { .total($0) }
/// ```
///
/// String names keep working where the target is only known at run time (a pool member, a name from a message).
public struct AgentName<Target: Agent>: Sendable, Hashable, CustomStringConvertible {
    /// The name in the run.
    public let name: String

    /// A typed name for the agent of type `Target` named `name`.
    public init(_ name: String) { self.name = name }

    public var description: String { name }
}

extension Child {
    /// Creates the child named by a typed name (see ``AgentName``); otherwise as ``init(_:_:restart:shutdown:options:)``.
    @inlinable
    public init<A: Agent>(
        _ name: AgentName<A>,
        _ agent: A,
        restart: ChildSpec.Restart = .permanent,
        shutdown: ChildSpec.Shutdown = .default,
        options: AgentOptions = AgentOptions()
    ) {
        self.init(name.name, agent, restart: restart, shutdown: shutdown, options: options)
    }
}

extension AgentContext {
    /// Sends `message` to the agent `name` names; see ``send(_:to:)-(_,String)``. Only `Target`'s messages compile.
    public func send<Target: Agent>(_ message: Target.Message, to name: AgentName<Target>) async throws {
        try await send(message, to: name.name)
    }

    /// Sends only if there is room; see ``trySend(_:to:)-(_,String)``.
    @discardableResult
    public func trySend<Target: Agent>(_ message: Target.Message, to name: AgentName<Target>) throws -> Bool {
        try trySend(message, to: name.name)
    }

    /// Sends a request and waits for its reply; see ``call(_:timeout:_:)-(String,_,_)``.
    public func call<Target: Agent, Value: Sendable>(
        _ name: AgentName<Target>,
        timeout: Duration,
        _ makeMessage: (Reply<Value>) -> Target.Message
    ) async throws -> Value {
        try await call(name.name, timeout: timeout, makeMessage)
    }
}

extension Run {
    /// Sends `message` to the agent `name` names, from outside the run. Only `Target`'s messages compile.
    public func send<Target: Agent>(_ message: Target.Message, to name: AgentName<Target>) async throws {
        try await send(message, to: name.name)
    }

    /// Sends a request from outside the run and waits for its reply.
    public func call<Target: Agent, Value: Sendable>(
        _ name: AgentName<Target>,
        timeout: Duration,
        _ makeMessage: (Reply<Value>) -> Target.Message
    ) async throws -> Value {
        try await call(name.name, timeout: timeout, makeMessage)
    }
}
