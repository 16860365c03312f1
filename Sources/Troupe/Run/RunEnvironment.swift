import Logging
public import Synchronization

/// What every supervisor and agent of one run shares.
@usableFromInline
final class RunEnvironment: Sendable {
    let run: RunID
    let registry = Registry()
    let events: EventBus
    let store: any CheckpointStore
    let clock: EngineClock
    let logger: Logger
    let random: RandomSource
    let durability: Durability
    /// Where ``AgentContext/offload(_:)`` runs CPU-bound work: threads outside Swift's cooperative pool.
    let offload: OffloadPool
    /// Messages handled by the run's handler-style agents, added a batch at a time.
    @usableFromInline let handled = Atomic<Int>(0)
    /// Clients the agents share (``Run/Configuration/services``).
    let services: [any Sendable]
    /// Where the run's metrics go; `nil` when nothing records them.
    @usableFromInline let metrics: EngineMetrics?
    /// The least severe agents' log lines kept in the run's event log; `nil`: none.
    let storedLogLevel: Logger.Level?
    /// Where the run's spans go; `nil` when nothing traces.
    @usableFromInline let tracing: EngineTracing?
    /// Fulfilled when the run has attached to its store (or failed to): durable writes wait for it.
    let attachment = OneShot<Result<Bool, TroupeError>>()
    /// Fulfilled when the run must stop without waiting for graceful stops (a cancel's grace ran out, the lease was
    /// lost): every stop in progress or to come skips to cancellation, the ladder's second rung.
    let hurry = OneShot<Void>()

    init(
        run: RunID,
        store: any CheckpointStore,
        clock: EngineClock,
        logger: Logger,
        random: RandomSource,
        durability: Durability,
        offloadWidth: Int,
        services: [any Sendable] = [],
        metrics: EngineMetrics? = nil,
        storedLogLevel: Logger.Level? = nil,
        tracing: EngineTracing? = nil
    ) {
        self.tracing = tracing
        self.services = services
        self.metrics = metrics
        self.storedLogLevel = storedLogLevel
        self.run = run
        self.offload = OffloadPool(width: offloadWidth)
        var logger = logger
        logger[metadataKey: "troupe.run.id"] = .string(run.rawValue)
        self.logger = logger
        self.events = EventBus(run: run, logger: logger)
        self.store = store
        self.clock = clock
        self.random = random
        self.durability = durability
    }
}

extension RunEnvironment {
    /// Waits until the run has attached to its store.
    ///
    /// - Throws: The attach error, or `CancellationError`.
    func attached() async throws {
        if case .success = attachment.value { return }
        guard let result = await attachment.wait() else { throw CancellationError() }
        _ = try result.get()
    }
}

/// Draws numbers in `0..<1` for backoff jitter, from an injectable generator.
final class RandomSource: Sendable {
    private let draw: @Sendable () -> Double

    init(_ generator: some RandomNumberGenerator & Sendable) {
        let state = Mutex(generator)
        self.draw = { state.withLock { Double.random(in: 0..<1, using: &$0) } }
    }

    func next() -> Double { draw() }
}
