public import CoreMetrics
public import Logging
import FoundationEssentials
public import ServiceLifecycle
public import Tracing
import Glibc
import Synchronization

/// One running instance of a ``Blueprint``: its supervision tree, its names and its event stream.
///
/// A run is a swift-service-lifecycle `Service`, so it shuts down gracefully with the process:
///
/// ```swift
/// let run = try Run(blueprint)
/// let group = ServiceGroup(
///     services: [run],
///     gracefulShutdownSignals: [.sigterm, .sigint],
///     logger: logger
/// )
/// try await group.run()
/// ```
///
/// or directly, with `try await run.run()` in a task and ``shutdown()`` to end it.
///
/// ## Topics
/// ### Creating and running
/// - ``init(_:id:parameters:configuration:)``
/// - ``Configuration``
/// - ``run()``
/// - ``shutdown()``
/// ### Talking to agents from outside
/// - ``send(_:to:)-(_,String)``
/// - ``trySend(_:to:)-(_,String)``
/// - ``address(of:as:)``
/// - ``call(_:timeout:_:)-(String,_,_)``
/// - ``publish(_:to:)``
/// ### Watching
/// - ``events(bufferingNewest:)``
/// - ``addEventSink(bufferingNewest:_:)``
/// - ``supervisor``
public final class Run: Service {
    /// How a run is wired to the world: where checkpoints go, which clock and randomness it uses, how it logs.
    public struct Configuration: Sendable {
        /// Where checkpoints and dead letters go. Defaults to a fresh ``InMemoryCheckpointStore``.
        public var store: any CheckpointStore
        /// The clock for backoff, deadlines, timeouts and ``AgentContext/sleep(for:)``.
        public var clock: any Clock<Duration>
        /// Randomness for backoff jitter.
        public var random: any RandomNumberGenerator & Sendable
        /// The run's logger; events are logged through it with `troupe.*` metadata.
        public var logger: Logger
        /// The durability of agents whose blueprint and child spec choose none: ``Durability/checkpointed`` unless
        /// given, as for `troupe run` (so an agent's state survives a restart, and a process's end when the store
        /// does).
        public var durability: Durability
        /// How many threads run ``AgentContext/offload(_:)`` work at once; more jobs wait for a free thread.
        public var offloadThreads: Int
        /// Shared clients the run's agents reach through ``AgentContext/service(_:)`` — an `HTTPClient`, for
        /// instance, which `TroupeHTTP` exposes as `context.http`. The run does not start or stop them.
        public var services: [any Sendable]
        /// Where the run's metrics go (see the table in the *Operating runs* article): `nil` for the process's
        /// swift-metrics backend, which records nothing unless one was bootstrapped.
        public var metrics: (any MetricsFactory)?
        /// The least severe lines of the agents' loggers (``AgentContext/logger``) that the run's event log keeps,
        /// as `log` events (`troupe logs`), whatever the logger's own level; `nil` keeps none. A store that does not
        /// record events keeps none either.
        public var storedLogLevel: Logger.Level?
        /// Where the run's spans go (a span per handled message, durable step, commit and HTTP call): `nil` for
        /// the process's tracer (swift-distributed-tracing's `InstrumentationSystem`), which makes none unless one
        /// was bootstrapped.
        public var tracer: (any Tracer)?
        /// Whether the store's event log also gets a `checkpointed` row per checkpoint (off: each checkpoint is in
        /// `troupe checkpoints` already, and such rows were most of a busy run's log).
        public var checkpointEvents: Bool

        /// Creates a configuration.
        public init(
            store: any CheckpointStore = InMemoryCheckpointStore(),
            clock: any Clock<Duration> = ContinuousClock(),
            random: any RandomNumberGenerator & Sendable = SystemRandomNumberGenerator(),
            logger: Logger = Logger(label: "troupe"),
            durability: Durability = .checkpointed,
            offloadThreads: Int = 8,
            services: [any Sendable] = [],
            metrics: (any MetricsFactory)? = nil,
            storedLogLevel: Logger.Level? = .info,
            tracer: (any Tracer)? = nil,
            checkpointEvents: Bool = false
        ) {
            self.tracer = tracer
            self.checkpointEvents = checkpointEvents
            self.services = services
            self.metrics = metrics
            self.storedLogLevel = storedLogLevel
            precondition(offloadThreads > 0, "offloadThreads must be at least 1 (got \(offloadThreads))")
            self.offloadThreads = offloadThreads
            self.store = store
            self.clock = clock
            self.random = random
            self.logger = logger
            self.durability = durability
        }
    }

    /// The run's identity.
    public let id: RunID
    /// The blueprint it runs.
    public let blueprint: Blueprint
    /// The root of the supervision tree.
    public let supervisor: Supervisor
    /// The parameters the blueprint was built with, recorded by the store so that a resume can rebuild it.
    public let parameters: [String: String]
    let environment: RunEnvironment
    private let durability: Durability
    /// ``Configuration/checkpointEvents``.
    private let checkpointEvents: Bool
    private let commandObservers = Mutex<[@Sendable (OperatorCommand) -> Void]>([])
    private let cancelled = Atomic<Bool>(false)
    /// Fulfilled with the grace of the first ``cancel(grace:)``.
    private let cancelGrace = OneShot<Duration>()
    private let completed = Atomic<Bool>(false)

    /// Builds a run: its supervision tree, mailboxes and names. Nothing starts until ``run()``.
    ///
    /// Mailboxes exist from here on, so messages can be sent to agents before the run starts; they wait in the
    /// mailboxes.
    ///
    /// - Parameters:
    ///   - blueprint: The supervision tree to run.
    ///   - id: The run's identity; random by default. The identity of a run the store knows resumes it.
    ///   - parameters: The parameters `blueprint` was built from, recorded for operators and resumes.
    ///   - configuration: Store, clock, randomness, logger and default durability.
    /// - Throws: ``TroupeError/Code/duplicateName`` if two children in the tree share a name.
    public init(
        _ blueprint: Blueprint,
        id: RunID = .random(),
        parameters: [String: String] = [:],
        configuration: Configuration = Configuration()
    ) throws {
        self.id = id
        self.parameters = parameters
        self.blueprint = blueprint
        let environment = RunEnvironment(
            run: id,
            store: configuration.store,
            clock: EngineClock(configuration.clock),
            logger: configuration.logger,
            random: RandomSource(configuration.random),
            durability: configuration.durability,
            offloadWidth: configuration.offloadThreads,
            services: configuration.services,
            metrics: EngineMetrics.make(configuration.metrics),
            storedLogLevel: configuration.store.recordsEvents ? configuration.storedLogLevel : nil,
            tracing: EngineTracing.make(configuration.tracer)
        )
        self.checkpointEvents = configuration.checkpointEvents
        self.environment = environment
        self.durability = configuration.durability
        self.supervisor = try Supervisor(
            blueprint,
            context: ChildFactoryContext(environment: environment, durability: nil)
        )
    }

    /// Runs the tree until graceful shutdown or cancellation; see ``Supervisor/run()``.
    ///
    /// - Throws: ``TroupeError/Code/escalated`` if the root supervisor gave up.
    public func run() async throws {
        // The run is over when its root supervisor returns: end every event sequence, so readers' loops finish,
        // and let every event sink see the last events before returning.
        let outcome: Result<Void, any Error>
        do {
            outcome = .success(try await runTree())
        } catch {
            outcome = .failure(error)
        }
        environment.events.finish()
        await environment.events.drained()
        try outcome.get()
    }

    private func runTree() async throws {
        let store = environment.store
        // Who drove the run before, if anyone: a resume records in the log that its process was lost.
        let previous = try? await (store as? any RunReadModel)?.run(id)
        do {
            let resumed = try await store.attach(
                RunRecord(
                    id: id,
                    blueprint: blueprint.name,
                    agents: environment.registry.agentNames,
                    parameters: parameters,
                    durability: durability
                )
            )
            environment.attachment.fulfill(.success(resumed))
        } catch {
            let failure = error as? TroupeError ?? TroupeError(.storage, "run \(id) could not attach to its store", underlying: error)
            environment.attachment.fulfill(.failure(failure))
            throw failure
        }
        if store.recordsEvents {
            // The store's event log is the run's history: starts, exits, restarts, operators' actions. A checkpoint
            // is recorded by the checkpoint itself (`troupe checkpoints`), not also as a row of the log, unless the
            // configuration asks; the bus (`Run.events()`, `troupe run`'s output) carries it either way.
            environment.events.addSink(checkpoints: checkpointEvents) { event in store.record(event) }
        }
        if let previous, previous.status != .pending {
            let root = supervisor.name
            if previous.status == .crashed, let owner = previous.owner {
                environment.events.emit(
                    root, incarnation: 0, .processLost(process: "pid \(owner.pid) on \(owner.host)"), at: owner.heartbeatAt
                )
            }
            environment.events.emit(root, incarnation: 0, .resumed(process: "pid \(getpid()) on \(OwnerLiveness.localHost)"))
        }
        let controller = RunController(run: self, environment: environment)
        let started = OneShot<Bool>()
        let environment = self.environment
        let supervisor = self.supervisor
        let cancelGrace = self.cancelGrace
        // The tree runs in this task; beside it, the controller (operators' commands, tree snapshot, lease watch)
        // and the cancel grace timer, all ended when the tree has stopped.
        let result: Result<Void, any Error> = await withTaskGroup(of: Result<Void, any Error>?.self) { group in
            group.addTask {
                do {
                    try await supervisor.run(incarnation: nil, started: started)
                    return .success(())
                } catch {
                    return .failure(error)
                }
            }
            group.addTask {
                await controller.run(started: started)
                return nil
            }
            group.addTask {
                guard let grace = await cancelGrace.wait() else { return nil }
                try? await environment.clock.sleep(for: grace)
                if !Task.isCancelled { environment.hurry.fulfill(()) }
                return nil
            }
            var result: Result<Void, any Error> = .success(())
            while let next = await group.next() {
                if let next {
                    result = next
                    break
                }
            }
            group.cancelAll()
            return result
        }
        if let lost = controller.lostLease.withLock({ $0 }) {
            // The new owner's store rows are not this process's to write: nothing is recorded here but the log.
            throw TroupeError(
                .leaseHeld,
                "run \(id) stopped: its lease was lost (\(lost.message)). Its agents were stopped and nothing more "
                    + "was written by this process.",
                underlying: lost
            )
        }
        await controller.publishFinalTree()
        if case .failure(let error) = result {
            await store.detach(id, outcome: .failed, error: "\(error)")
            throw error
        }
        let outcome: RunOutcome =
            cancelled.load(ordering: .relaxed) ? .cancelled : (completed.load(ordering: .relaxed) ? .completed : .stopped)
        await store.detach(id, outcome: outcome, error: nil)
    }

    /// Whether the store already knew this run when it started: `true` for a resumed run. `nil` until
    /// ``run()`` has attached to the store.
    public var isResumed: Bool? {
        guard case .success(let resumed) = environment.attachment.value else { return nil }
        return resumed
    }

    /// Asks the run to shut down gracefully: every agent finishes its message in hand and is stopped, in reverse
    /// start order, through its shutdown ladder.
    public func shutdown() {
        supervisor.requestShutdown()
    }

    /// Like ``shutdown()``, but the store records the run as cancelled by an operator rather than stopped.
    public func cancel() {
        cancelled.store(true, ordering: .relaxed)
        supervisor.requestShutdown()
    }

    /// Cancels the run (see ``cancel()``); agents still stopping gracefully after `grace` are cancelled, the
    /// shutdown ladder's second rung. What `troupe cancel --grace` does.
    public func cancel(grace: Duration) {
        cancel()
        cancelGrace.fulfill(grace)
    }

    /// Calls `observer` with every operator command the run applied, and its result.
    package func addCommandObserver(_ observer: @escaping @Sendable (OperatorCommand) -> Void) {
        commandObservers.withLock { $0.append(observer) }
    }

    func commandApplied(_ command: OperatorCommand) {
        for observer in commandObservers.withLock({ $0 }) { observer(command) }
    }

    /// Like ``shutdown()``, for a run whose work is done (every agent has exited for good): the store records it
    /// as completed.
    public func complete() {
        completed.store(true, ordering: .relaxed)
        supervisor.requestShutdown()
    }

    /// Grows with every lifecycle event (anything but a checkpoint): a watcher re-reads the tree only when it moved.
    package var treeVersion: UInt64 { environment.events.treeChanges.load(ordering: .relaxed) }

    /// How many messages the run's handler-style agents have handled so far.
    public var messagesHandled: Int { environment.handled.load(ordering: .relaxed) }

    /// The run's events as they happen. The sequence ends when ``run()`` returns.
    ///
    /// - Parameter limit: How many unread events to keep if the reader falls behind; older ones are dropped.
    public func events(bufferingNewest limit: Int = 100_000) -> AsyncStream<Event> {
        environment.events.subscribe(bufferingNewest: limit)
    }

    /// Calls `sink` with every event, in order, on a thread of its own (never one of the cooperative pool's, so a
    /// sink may block).
    ///
    /// Events wait for the sink in a bounded buffer, so a slow sink (printing to a pipe nobody reads) never holds
    /// up agents or supervisors; if more than `limit` events wait, the oldest are dropped. ``run()`` returns only
    /// after the sink has been handed every event of the run.
    ///
    /// - Parameters:
    ///   - limit: How many events may wait for the sink.
    ///   - sink: Called once per event.
    public func addEventSink(bufferingNewest limit: Int = 100_000, _ sink: @escaping @Sendable (Event) -> Void) {
        environment.events.addBufferedSink(limit: limit, sink)
    }

    /// Sends a message to an agent or pool by name, suspending while its mailbox is full.
    ///
    /// - Throws: As ``AgentContext/send(_:to:)-(_,String)``.
    public func send<Message: Sendable>(_ message: Message, to name: String) async throws {
        try await environment.registry.send(message, to: name)
    }

    /// Sends a message only if the recipient has room; returns `false` if not.
    @discardableResult
    public func trySend<Message: Sendable>(_ message: Message, to name: String) throws -> Bool {
        try environment.registry.trySend(message, to: name)
    }

    /// Resolves an agent's name to a typed ``Address``.
    public func address<Message: Sendable>(of name: String, as type: Message.Type = Message.self) throws
        -> Address<Message>
    {
        Address(try environment.registry.mailbox(name, as: type))
    }

    /// Sends a request and waits for its reply; see ``AgentContext/call(_:timeout:_:)-(String,_,_)``.
    public func call<Message: Sendable, Value: Sendable>(
        _ name: String,
        timeout: Duration,
        _ makeMessage: (Reply<Value>) -> Message
    ) async throws -> Value {
        try await environment.call(name, timeout: timeout, makeMessage)
    }

    /// Sends the signal `name` with `value` to an agent waiting for it (``AgentContext/signal(_:as:timeout:)``), as
    /// `troupe signal` does: through the run's command queue, so that it gets an identity that makes it exactly
    /// once. The run's controller applies it: a checkpointed or durable agent's signal is stored first.
    ///
    /// - Returns: The command's id in the queue.
    /// - Throws: ``TroupeError/Code/invalidSpec`` if the run's store keeps no command queue, and the store's errors.
    @discardableResult
    public func signal(_ name: String, _ value: some Encodable, to agent: String) async throws -> Int64 {
        guard let queue = environment.store as? any ControlQueue else {
            throw TroupeError(.invalidSpec, "the store of run \(id) keeps no command queue, which signals go through")
        }
        let json = String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
        return try await queue.enqueue(.signal(agent: agent, name: name, value: json), for: id, origin: nil)
    }

    /// Publishes a value to a topic's subscribers; returns how many received it.
    @discardableResult
    public func publish<Payload: Sendable>(_ value: Payload, to topic: Topic<Payload>) async throws -> Int {
        try await environment.registry.publish(value, to: topic)
    }
}

extension RunEnvironment {
    func call<Message: Sendable, Value: Sendable>(
        _ name: String,
        timeout: Duration,
        _ makeMessage: (Reply<Value>) -> Message
    ) async throws -> Value {
        let slot = OneShot<Result<Value, TroupeError>>()
        let message = makeMessage(Reply(slot))
        let registry = self.registry
        let clock = self.clock
        let outcome = try await withThrowingTaskGroup(of: Result<Value, TroupeError>?.self) { group in
            group.addTask {
                try await registry.send(message, to: name)
                return await slot.wait()
            }
            group.addTask {
                try await clock.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
        guard let outcome else {
            throw TroupeError(
                .timeout,
                "'\(name)' did not answer within \(timeout). It may be busy, crashed before replying, or never "
                    + "answer this request; raise the timeout or check its events."
            )
        }
        return try outcome.get()
    }
}
