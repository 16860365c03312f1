/// How a supervisor starts, restarts and stops one child: an agent, a pool of agents, or a nested supervisor.
///
/// Build specs with ``Child``, ``Pool`` and ``Blueprint`` inside a blueprint's children, or pass them to
/// ``Supervisor/startChild(_:)`` at run time.
public struct ChildSpec: Sendable {
    /// Whether a child is restarted when it exits.
    ///
    /// | restart | after a failure | after a normal exit | after being stopped |
    /// |---|---|---|---|
    /// | ``permanent`` | restarted | restarted | kept stopped |
    /// | ``transient`` | restarted | kept stopped | kept stopped |
    /// | ``temporary`` | removed | removed | removed |
    public struct Restart: Hashable, Sendable, CustomStringConvertible {
        enum Value: Hashable, Sendable {
            case permanent, transient, temporary
        }

        let value: Value
        private init(_ value: Value) { self.value = value }

        /// Always restarted: for agents that must always run.
        public static let permanent = Restart(.permanent)
        /// Restarted only after a failure: for agents that finish their work and return.
        public static let transient = Restart(.transient)
        /// Never restarted, and removed from the supervisor when it exits: for one-off work.
        public static let temporary = Restart(.temporary)

        public var description: String {
            switch value {
            case .permanent: "permanent"
            case .transient: "transient"
            case .temporary: "temporary"
            }
        }
    }

    /// Where a restarted agent starts from.
    public struct StartPoint: Hashable, Sendable {
        enum Value: Hashable, Sendable {
            case lastCheckpoint, initialState
        }

        let value: Value
        private init(_ value: Value) { self.value = value }

        /// Resume from the last checkpoint (the default): no committed progress is lost.
        public static let lastCheckpoint = StartPoint(.lastCheckpoint)
        /// Start every incarnation from ``Agent/initialState()``, as OTP does.
        public static let initialState = StartPoint(.initialState)
    }

    /// The shutdown ladder's deadlines for one child.
    ///
    /// Stopping a child first asks it to stop gracefully (it finishes the message in hand and its final state is
    /// checkpointed) and waits up to ``graceful``; then cancels its task and waits up to ``cancellation``; then
    /// abandons it and reports an ``Event/Kind/abandoned`` event. A `nil` deadline waits without limit (for nested
    /// supervisors, whose own children have deadlines).
    public struct Shutdown: Hashable, Sendable {
        /// How long a graceful stop may take; `nil` waits without limit, `.zero` skips straight to cancellation.
        public var graceful: Duration?
        /// How long the task may take to end after cancellation; `nil` waits without limit.
        public var cancellation: Duration?

        /// Creates a shutdown policy.
        public init(graceful: Duration?, cancellation: Duration?) {
            self.graceful = graceful
            self.cancellation = cancellation
        }

        /// 5 seconds graceful, then 5 seconds after cancellation.
        public static let `default` = Shutdown(graceful: .seconds(5), cancellation: .seconds(5))
        /// Wait as long as it takes: the default for nested supervisors.
        public static let infinity = Shutdown(graceful: nil, cancellation: nil)
    }

    /// The child's name; unique within the run.
    public var name: String
    /// Whether it is restarted when it exits.
    public var restart: Restart
    /// How it is stopped.
    public var shutdown: Shutdown

    @usableFromInline let make: @Sendable (ChildFactoryContext) throws -> any ChildRuntime

    @usableFromInline
    init(
        name: String,
        restart: Restart,
        shutdown: Shutdown,
        make: @escaping @Sendable (ChildFactoryContext) throws -> any ChildRuntime
    ) {
        self.name = name
        self.restart = restart
        self.shutdown = shutdown
        self.make = make
    }
}

/// What a child spec needs from its parent supervisor to build the child.
@usableFromInline
struct ChildFactoryContext: Sendable {
    @usableFromInline let environment: RunEnvironment
    /// The durability inherited from the enclosing blueprints, if any set one.
    let durability: Durability?
}

/// Something that can stand among a blueprint's children: ``Child``, ``Pool`` or a nested ``Blueprint``.
public protocol BlueprintComponent: Sendable {
    /// The child specification it stands for.
    var spec: ChildSpec { get }
}

/// Options that apply to every agent child.
public struct AgentOptions: Sendable, Hashable {
    /// The mailbox's capacity: senders suspend while this many messages wait.
    public var mailboxCapacity: Int
    /// The child's durability; `nil` inherits the blueprint's (and the run's).
    public var durability: Durability?
    /// Where a restarted incarnation starts from.
    public var restartFrom: ChildSpec.StartPoint
    /// How many times one message may crash the agent before it becomes a dead letter. At least 1.
    public var maxDeliveryFailures: Int
    /// Whether each commit of a ``Durability/durable`` or ``Durability/checkpointed`` agent waits until it is on
    /// disk (`fsync`) before the agent goes on. Without it the agent waits until the commit is in the database,
    /// which survives the death of the process (`kill -9`) but not of the machine (power loss, kernel panic).
    public var syncCommits: Bool

    /// Creates agent options.
    public init(
        mailboxCapacity: Int = 1024,
        durability: Durability? = nil,
        restartFrom: ChildSpec.StartPoint = .lastCheckpoint,
        maxDeliveryFailures: Int = 3,
        syncCommits: Bool = false
    ) {
        self.syncCommits = syncCommits
        precondition(mailboxCapacity > 0, "mailboxCapacity must be at least 1 (got \(mailboxCapacity))")
        precondition(
            (1...65_535).contains(maxDeliveryFailures),
            "maxDeliveryFailures must be between 1 and 65,535 (got \(maxDeliveryFailures))"
        )
        self.mailboxCapacity = mailboxCapacity
        self.durability = durability
        self.restartFrom = restartFrom
        self.maxDeliveryFailures = maxDeliveryFailures
    }
}

/// One agent under a supervisor.
///
/// ```swift
/// Child("counter", Counter())
/// Child("printer", Printer(), restart: .transient, options: .init(mailboxCapacity: 64))
/// ```
public struct Child: BlueprintComponent {
    public let spec: ChildSpec

    /// Creates a child spec for one agent.
    ///
    /// - Parameters:
    ///   - name: The agent's name, unique within the run; other agents send to it by this name.
    ///   - agent: The agent's configuration, shared by all its incarnations.
    ///   - restart: Whether it is restarted when it exits.
    ///   - shutdown: The deadlines of its shutdown ladder.
    ///   - options: Mailbox capacity, durability, restart point and poison-message limit.
    @inlinable
    public init<A: Agent>(
        _ name: String,
        _ agent: A,
        restart: ChildSpec.Restart = .permanent,
        shutdown: ChildSpec.Shutdown = .default,
        options: AgentOptions = AgentOptions()
    ) {
        self.spec = ChildSpec(name: name, restart: restart, shutdown: shutdown) { context in
            // The runner closure is made here, where A is concrete, so the message loop is specialised for it.
            try AgentCell(
                name: name,
                agent: agent,
                options: options,
                context: context,
                endsForGood: restart != .permanent,
                starter: { await $0.startIncarnation($1) },
                runner: { await $0.runIncarnation($1) }
            )
        }
    }
}

/// A pool of identical agents under one name, like OTP's `simple_one_for_one`.
///
/// The members are named `NAME-0` … `NAME-(count-1)`, and a message sent to `NAME` goes to one member, round robin,
/// preferring a member whose mailbox has room. The pool is one child of its supervisor: the members are restarted
/// individually (one-for-one) by a supervisor of their own, and the pool fails to its supervisor only if its
/// members together exceed the pool's `intensity` (``init(_:count:restart:intensity:backoff:shutdown:options:agent:)``).
///
/// ```swift
/// Pool("fetcher", count: 8) { index in Fetcher(slot: index) }
/// ```
public struct Pool: BlueprintComponent {
    public let spec: ChildSpec

    /// Creates a pool.
    ///
    /// - Parameters:
    ///   - name: The pool's name; members are `name-0`, `name-1`, …
    ///   - count: How many members; at least 1.
    ///   - restart: The members' restart type.
    ///   - intensity: The restart intensity of the pool's own supervisor.
    ///   - backoff: The backoff between members' restarts.
    ///   - shutdown: Each member's shutdown deadlines.
    ///   - options: Each member's agent options.
    ///   - agent: Makes the agent for member `index`.
    @inlinable
    public init<A: Agent>(
        _ name: String,
        count: Int,
        restart: ChildSpec.Restart = .permanent,
        intensity: RestartIntensity = .default,
        backoff: Backoff = .default,
        shutdown: ChildSpec.Shutdown = .default,
        options: AgentOptions = AgentOptions(),
        agent: @escaping @Sendable (Int) -> A
    ) {
        precondition(count > 0, "pool '\(name)' needs at least one member (got count \(count))")
        self.spec = ChildSpec(name: name, restart: .permanent, shutdown: .infinity) { context in
            let members = try (0..<count).map { index in
                try AgentCell(
                    name: "\(name)-\(index)",
                    agent: agent(index),
                    options: options,
                    context: context,
                    endsForGood: restart != .permanent,
                    starter: { await $0.startIncarnation($1) },
                    runner: { await $0.runIncarnation($1) }
                )
            }
            return try Pool.supervise(
                name,
                members: members,
                restart: restart,
                intensity: intensity,
                backoff: backoff,
                shutdown: shutdown,
                context: context
            )
        }
    }

    @usableFromInline
    static func supervise<A: Agent>(
        _ name: String,
        members: [AgentCell<A>],
        restart: ChildSpec.Restart,
        intensity: RestartIntensity,
        backoff: Backoff,
        shutdown: ChildSpec.Shutdown,
        context: ChildFactoryContext
    ) throws -> any ChildRuntime {
        let specs = members.map { member in
            ChildSpec(name: member.name, restart: restart, shutdown: shutdown) { _ in member }
        }
        let supervisor = try Supervisor(
            name: name,
            strategy: .oneForOne,
            intensity: intensity,
            backoff: backoff,
            children: specs,
            context: context
        )
        try context.environment.registry.registerPool(name, members: members.map(\.mailbox))
        return SupervisorChild(supervisor)
    }

    /// Creates a pool of copies of one agent.
    @inlinable
    public init<A: Agent>(
        _ name: String,
        _ agent: A,
        count: Int,
        restart: ChildSpec.Restart = .permanent,
        intensity: RestartIntensity = .default,
        options: AgentOptions = AgentOptions()
    ) {
        self.init(name, count: count, restart: restart, intensity: intensity, options: options) { _ in agent }
    }
}

/// Builds the list of a blueprint's children.
@resultBuilder
public enum ChildrenBuilder {
    public static func buildExpression(_ component: some BlueprintComponent) -> [ChildSpec] { [component.spec] }
    public static func buildBlock(_ parts: [ChildSpec]...) -> [ChildSpec] { parts.flatMap { $0 } }
    public static func buildOptional(_ part: [ChildSpec]?) -> [ChildSpec] { part ?? [] }
    public static func buildEither(first part: [ChildSpec]) -> [ChildSpec] { part }
    public static func buildEither(second part: [ChildSpec]) -> [ChildSpec] { part }
    public static func buildArray(_ parts: [[ChildSpec]]) -> [ChildSpec] { parts.flatMap { $0 } }
}

/// A supervision tree: a supervisor's strategy, intensity and backoff, and its children in start order.
///
/// A blueprint is what `troupe run NAME` starts. Blueprints nest: a blueprint among another's children is a
/// supervisor under that supervisor.
///
/// ```swift
/// let blueprint = Blueprint("counting", strategy: .oneForOne, intensity: .init(maxRestarts: 5, within: .seconds(10))) {
///     Child("counter", Counter())
///     Child("printer", Printer(), restart: .transient)
///     Pool("fetcher", Fetcher(), count: 8)
///     Blueprint("pipeline", strategy: .restForOne) {
///         Child("source", Source())
///         Child("sink", Sink())
///     }
/// }
/// ```
public struct Blueprint: BlueprintComponent {
    /// The supervisor's name (and, for the root, the blueprint's name).
    public var name: String
    /// Which children restart together.
    public var strategy: RestartStrategy
    /// How many restarts are tolerated before escalating.
    public var intensity: RestartIntensity
    /// The delay between restarts of a failing child.
    public var backoff: Backoff
    /// The durability of agents in this tree that do not choose their own; `nil` inherits the parent's.
    public var durability: Durability?
    /// Whether this supervisor, as a child of another, is restarted when it fails.
    public var restart: ChildSpec.Restart
    /// The children, in start order.
    public var children: [ChildSpec]

    /// Creates a blueprint.
    ///
    /// - Parameters:
    ///   - name: The blueprint's name.
    ///   - strategy: Which children restart together.
    ///   - intensity: How many restarts are tolerated before escalating.
    ///   - backoff: The delay between restarts.
    ///   - durability: The agents' default durability.
    ///   - restart: Its restart type when nested under another blueprint.
    ///   - children: The children, in start order.
    public init(
        _ name: String,
        strategy: RestartStrategy = .oneForOne,
        intensity: RestartIntensity = .default,
        backoff: Backoff = .default,
        durability: Durability? = nil,
        restart: ChildSpec.Restart = .permanent,
        @ChildrenBuilder children: () -> [ChildSpec]
    ) {
        self.name = name
        self.strategy = strategy
        self.intensity = intensity
        self.backoff = backoff
        self.durability = durability
        self.restart = restart
        self.children = children()
    }

    public var spec: ChildSpec {
        let blueprint = self
        return ChildSpec(name: name, restart: restart, shutdown: .infinity) { context in
            SupervisorChild(try Supervisor(blueprint, context: context))
        }
    }
}
