public import ServiceLifecycle
import Synchronization

/// Runs children — agents, pools and nested supervisors — and restarts them when they exit, as an OTP supervisor
/// does; a restarted agent resumes from its last checkpoint.
///
/// A supervisor is built from a ``Blueprint``, usually as the root of a ``Run``. ``run()`` starts the children in
/// order and supervises them until graceful shutdown, cancellation or escalation, then stops them in reverse start
/// order, each through its shutdown ladder (see ``ChildSpec/Shutdown``).
///
/// Decisions (whom to restart, when, whether to escalate) come from a pure state machine; the actor carries them
/// out. Child exits reach it through one ordered stream, so restarts never interleave.
///
/// ## Topics
/// ### Running
/// - ``run()``
/// - ``requestShutdown()``
/// ### Dynamic children
/// - ``startChild(_:)``
/// - ``terminateChild(_:)``
/// - ``restartChild(_:)``
/// - ``deleteChild(_:)``
/// - ``children()``
/// - ``count()``
/// - ``supervisor(named:)``
public actor Supervisor: Service {
    /// The supervisor's name: its blueprint's name.
    public nonisolated let name: String
    let environment: RunEnvironment
    private let factoryContext: ChildFactoryContext
    private var machine: StateMachine
    private var records: [String: Record] = [:]
    private var isRunning = false
    /// The current run's control stream, reachable without the actor so that exits and stop requests never wait,
    /// and whether a shutdown was requested before the run started.
    private nonisolated let inbox = Mutex<(stream: AsyncStream<Control>.Continuation?, shutdownPending: Bool)>(
        (nil, false)
    )

    private struct Current {
        let incarnation: Incarnation
    }

    private struct Record {
        let spec: ChildSpec
        let runtime: any ChildRuntime
        var current: Current?
        var incarnations: UInt64 = 0
        var restarts = 0
        var stopping = false
        /// Stopped on purpose (terminated or shut down) rather than exited on its own.
        var terminated = false
    }

    enum Control: Sendable {
        case exited(String, incarnation: UInt64, ExitReason)
        case shutdown
        case cancel
    }

    private enum Outcome {
        case shutdown, cancelled, escalated(TroupeError)
    }

    init(_ blueprint: Blueprint, context: ChildFactoryContext) throws {
        try self.init(
            name: blueprint.name,
            strategy: blueprint.strategy,
            intensity: blueprint.intensity,
            backoff: blueprint.backoff,
            children: blueprint.children,
            context: ChildFactoryContext(
                environment: context.environment,
                durability: blueprint.durability ?? context.durability
            )
        )
    }

    init(
        name: String,
        strategy: RestartStrategy,
        intensity: RestartIntensity,
        backoff: Backoff,
        children: [ChildSpec],
        context: ChildFactoryContext
    ) throws {
        self.name = name
        self.environment = context.environment
        self.factoryContext = context
        var machine = StateMachine(strategy: strategy, intensity: intensity, backoff: backoff)
        var records: [String: Record] = [:]
        for spec in children {
            guard records[spec.name] == nil else {
                throw TroupeError(
                    .duplicateName,
                    "supervisor '\(name)' has two children named '\(spec.name)'. Give each child its own name."
                )
            }
            records[spec.name] = Record(spec: spec, runtime: try spec.make(context))
            machine.add(spec.name, restart: spec.restart)
        }
        self.machine = machine
        self.records = records
    }

    // MARK: Running

    /// Starts the children in order and supervises them until shutdown.
    ///
    /// Returns after a graceful shutdown (``requestShutdown()``, or swift-service-lifecycle's graceful shutdown)
    /// or cancellation, once every child has been stopped in reverse start order.
    ///
    /// - Throws: ``TroupeError/Code/escalated`` when the restart intensity is exceeded; the children have been
    ///   stopped by then.
    /// - Important: A supervisor runs once at a time. Its parent may run it again after it has returned or thrown:
    ///   that is how a nested supervisor is restarted. Agents keep their mailboxes and checkpoints across it.
    public func run() async throws {
        try await run(incarnation: nil)
    }

    /// Asks the supervisor to shut down gracefully. If it has not started yet, its next ``run()`` shuts down as
    /// soon as its children have started.
    public nonisolated func requestShutdown() {
        inbox.withLock { inbox in
            if let stream = inbox.stream {
                stream.yield(.shutdown)
            } else {
                inbox.shutdownPending = true
            }
        }
    }

    /// Asks a running supervisor to shut down; does nothing (and remembers nothing) if it is not running.
    nonisolated func requestShutdownIfRunning() {
        _ = inbox.withLock { $0.stream?.yield(.shutdown) }
    }

    func run(incarnation: Incarnation?) async throws {
        precondition(!isRunning, "supervisor '\(name)' is already running; a supervisor runs once at a time")
        isRunning = true
        defer { isRunning = false }
        let (stream, continuation) = AsyncStream<Control>.makeStream()
        let pending = inbox.withLock { inbox in
            inbox.stream = continuation
            defer { inbox.shutdownPending = false }
            return inbox.shutdownPending
        }
        if pending || incarnation?.isStopping == true { continuation.yield(.shutdown) }

        machine.reset()
        for name in machine.order {
            records[name]?.terminated = false
            records[name]?.restarts = 0
            launch(name, after: .zero)
        }
        environment.events.emit(name, incarnation: incarnation?.number ?? 0, .started)

        let outcome = await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await supervise(stream)
            } onGracefulShutdown: {
                continuation.yield(.shutdown)
            }
        } onCancel: {
            continuation.yield(.cancel)
        }

        machine.beginStopping()
        // The stop ladder must be able to wait out its deadlines even when this task is cancelled (a cancelled
        // task's sleeps end at once), so it runs in a task of its own, which cancellation does not reach. Awaiting
        // its value keeps it structured in practice: run() does not return before it has finished.
        let graceful: Bool
        if case .cancelled = outcome { graceful = false } else { graceful = true }
        await Task { await self.stopAll(graceful: graceful) }.value
        inbox.withLock { $0.stream = nil }
        continuation.finish()

        if case .escalated(let error) = outcome { throw error }
    }

    private func supervise(_ stream: AsyncStream<Control>) async -> Outcome {
        for await control in stream {
            switch control {
            case .exited(let child, let number, let reason):
                if let error = await childExited(child, incarnation: number, reason: reason) {
                    return .escalated(error)
                }
            case .shutdown:
                return .shutdown
            case .cancel:
                return .cancelled
            }
        }
        return .cancelled
    }

    private func stopAll(graceful: Bool) async {
        for name in machine.order.reversed() {
            await stop(name, graceful: graceful)
            records[name]?.terminated = true
            records[name]?.runtime.setAccepting(false)
        }
    }

    // MARK: Incarnations

    private func launch(_ name: String, after delay: Duration) {
        guard var record = records[name], let control = self.inbox.withLock({ $0.stream }) else { return }
        record.incarnations += 1
        record.terminated = false
        let environment = self.environment
        let incarnation = Incarnation(number: record.incarnations) { [number = record.incarnations] reason in
            environment.events.emit(name, incarnation: number, .exited(reason))
            control.yield(.exited(name, incarnation: number, reason))
        }
        let runtime = record.runtime
        runtime.setAccepting(true)
        machine.started(name, at: environment.clock.now + delay)
        // Unstructured on purpose: a child that ignores cancellation must not hold its supervisor hostage. It is
        // abandoned (and reported) after its deadlines, which a task-group child could not be, since the group would
        // wait for it forever. Its exit is reported through the control stream, so nothing is lost.
        incarnation.activate {
            guard await incarnation.sleep(for: delay, clock: environment.clock) else {
                incarnation.finish(incarnation.isStopping ? .stopped : .cancelled)
                return
            }
            incarnation.markBegun()
            // nil: the incarnation passivated; the task that resumes it reports its end.
            if let reason = await runtime.run(incarnation) { incarnation.finish(reason) }
        }
        record.current = Current(incarnation: incarnation)
        records[name] = record
    }

    /// Acts on a child's exit. Returns an error if the supervisor must escalate.
    private func childExited(_ name: String, incarnation number: UInt64, reason: ExitReason) async -> TroupeError? {
        guard let record = records[name], let current = record.current, current.incarnation.number == number,
            !record.stopping
        else { return nil }
        records[name]?.current = nil
        if case .failed(let error) = reason, let troupeError = error as? TroupeError, troupeError.code == .quarantined {
            // Restarting cannot help: the same checkpoint would fail again. Keep the agent (and its messages) until
            // an operator restarts it from a state it can read.
            machine.stopped(name)
            environment.events.emit(name, incarnation: number, .quarantined(error: troupeError.message))
            return nil
        }
        let now = environment.clock.now
        // Draw only when the backoff uses chance: the system generator costs a system call.
        let random = machine.backoff.jitter > 0 ? environment.random.next() : 0.5
        let action = machine.childExited(name, reason: reason, at: now, random: random)
        switch action {
        case .ignore:
            return nil
        case .keepStopped:
            record.runtime.setAccepting(false)
            return nil
        case .remove:
            records[name] = nil
            await record.runtime.remove()
            return nil
        case .restart(let names, let delay):
            for sibling in names.reversed() where sibling != name {
                await stop(sibling, graceful: true)
                machine.stopped(sibling)
            }
            for child in names {
                guard records[child] != nil else { continue }
                records[child]?.restarts += 1
                let restarts = records[child]?.restarts ?? 0
                environment.events.emit(
                    child,
                    incarnation: (records[child]?.incarnations ?? 0) + 1,
                    .restarting(after: delay, restarts: restarts)
                )
                launch(child, after: delay)
            }
            return nil
        case .escalate:
            let period = machine.intensity.period
            let restarts = machine.restartsInWindow(at: now)
            environment.events.emit(self.name, incarnation: 0, .escalated(restarts: restarts, within: period))
            return TroupeError(
                .escalated,
                "supervisor '\(self.name)' gave up: child '\(name)' exited (\(reason)) and the restarts reached "
                    + "\(restarts) within \(period), more than its intensity allows (\(machine.intensity)). "
                    + "See the children's 'exited' events for the cause."
            )
        }
    }

    /// Stops a child's current incarnation through the shutdown ladder: graceful, then cancellation, then abandon.
    private func stop(_ name: String, graceful: Bool) async {
        guard let record = records[name], let current = record.current, !record.stopping else { return }
        records[name]?.stopping = true
        let shutdown = record.spec.shutdown
        let clock = environment.clock
        let incarnation = current.incarnation
        var reason: ExitReason?
        if graceful, shutdown.graceful != .zero {
            record.runtime.requestStop(incarnation)
            reason = await withDeadline(shutdown.graceful, clock: clock) { await incarnation.exit.wait() }
        }
        if reason == nil {
            record.runtime.cancel(incarnation)
            reason = await withDeadline(shutdown.cancellation, clock: clock) { await incarnation.exit.wait() }
        }
        if reason == nil {
            environment.events.emit(name, incarnation: incarnation.number, .abandoned)
        } else {
            environment.events.emit(name, incarnation: incarnation.number, .stopped)
        }
        records[name]?.stopping = false
        if records[name]?.current?.incarnation === incarnation { records[name]?.current = nil }
    }

    // MARK: Dynamic children

    private func requireRunning() throws {
        guard isRunning, !machine.isStopping else {
            throw TroupeError(
                .notRunning,
                "supervisor '\(name)' is not running. Start the run first; children can be changed only while "
                    + "their supervisor runs."
            )
        }
    }

    private func record(_ name: String) throws -> Record {
        guard let record = records[name] else {
            let known = machine.order.joined(separator: ", ")
            throw TroupeError(
                .unknownChild,
                "supervisor '\(self.name)' has no child named '\(name)'. Its children are: \(known)."
            )
        }
        return record
    }

    /// Adds a child at the end of the start order and starts it.
    ///
    /// - Parameter child: A ``Child``, ``Pool`` or ``Blueprint``.
    /// - Throws: ``TroupeError/Code/duplicateName`` if the name is taken in the run, or
    ///   ``TroupeError/Code/notRunning``.
    public func startChild(_ child: some BlueprintComponent) async throws {
        try requireRunning()
        let spec = child.spec
        guard records[spec.name] == nil else {
            throw TroupeError(
                .duplicateName,
                "supervisor '\(name)' already has a child named '\(spec.name)'. Delete it first, or pick another name."
            )
        }
        records[spec.name] = Record(spec: spec, runtime: try spec.make(factoryContext))
        machine.add(spec.name, restart: spec.restart)
        launch(spec.name, after: .zero)
    }

    /// Stops a child through its shutdown ladder and keeps it, stopped, until ``restartChild(_:)`` or
    /// ``deleteChild(_:)``. Messages sent to it meanwhile are refused with ``TroupeError/Code/addressStopped``;
    /// messages already queued wait for its restart.
    ///
    /// - Throws: ``TroupeError/Code/unknownChild``.
    public func terminateChild(_ name: String) async throws {
        let record = try record(name)
        machine.stopped(name)
        records[name]?.terminated = true
        if record.current != nil { await stop(name, graceful: true) }
        record.runtime.setAccepting(false)
    }

    /// Starts a new incarnation of a child, resuming from its last checkpoint. A running child is first stopped
    /// through its shutdown ladder. Operator restarts do not count towards the restart intensity.
    ///
    /// - Throws: ``TroupeError/Code/unknownChild`` or ``TroupeError/Code/notRunning``.
    public func restartChild(_ name: String) async throws {
        try await restartChild(name, fresh: false)
    }

    /// Starts a new incarnation of a child; with `fresh`, from its initial state instead of its last checkpoint
    /// (the checkpoints stay in the store). For an agent quarantined by a checkpoint it cannot read, a fresh
    /// restart is the way back.
    ///
    /// - Throws: ``TroupeError/Code/unknownChild`` or ``TroupeError/Code/notRunning``.
    public func restartChild(_ name: String, fresh: Bool) async throws {
        try requireRunning()
        let record = try record(name)
        if fresh { record.runtime.startFreshOnce() }
        if record.current != nil {
            await stop(name, graceful: true)
            machine.stopped(name)
        }
        guard records[name] != nil else { return }
        records[name]?.restarts += 1
        environment.events.emit(
            name,
            incarnation: (records[name]?.incarnations ?? 0) + 1,
            .restarting(after: .zero, restarts: records[name]?.restarts ?? 0)
        )
        launch(name, after: .zero)
    }

    /// Removes a stopped child: frees its name, and sets aside any messages still queued for it as dead letters.
    ///
    /// - Throws: ``TroupeError/Code/unknownChild``, or ``TroupeError/Code/childRunning`` if it is running
    ///   (terminate it first).
    public func deleteChild(_ name: String) async throws {
        let record = try record(name)
        guard record.current == nil else {
            throw TroupeError(
                .childRunning,
                "child '\(name)' of supervisor '\(self.name)' is running. Terminate it first, then delete it."
            )
        }
        records[name] = nil
        machine.remove(name)
        await record.runtime.remove()
    }

    /// The children in start order, with their status; nested supervisors list their own children.
    public func children() async -> [ChildInfo] {
        var result: [ChildInfo] = []
        result.reserveCapacity(machine.order.count)
        for name in machine.order {
            guard let record = records[name] else { continue }
            let status: ChildInfo.Status
            if let current = record.current {
                if record.stopping {
                    status = .stopping
                } else {
                    status = current.incarnation.hasBegun ? .running : .restarting
                }
            } else {
                status = record.terminated ? .stopped : .exited
            }
            var info = ChildInfo(
                name: name,
                typeName: record.runtime.typeName,
                restart: record.spec.restart,
                status: status,
                incarnation: record.incarnations,
                restarts: record.restarts,
                mailboxDepth: record.runtime.mailboxDepth,
                isPassivated: record.current != nil && record.runtime.isPassivated
            )
            if let nested = record.runtime.supervisor { info.children = await nested.children() }
            result.append(info)
        }
        return result
    }

    /// Counts the children, like OTP's `count_children`.
    public func count() -> ChildCount {
        var count = ChildCount()
        for name in machine.order {
            guard let record = records[name] else { continue }
            count.specs += 1
            if record.current != nil { count.active += 1 }
            if record.runtime.supervisor != nil { count.supervisors += 1 } else { count.workers += 1 }
        }
        return count
    }

    /// The supervisor whose direct child is named `child`, searched depth-first from this one.
    public func supervisor(of child: String) async -> Supervisor? {
        if records[child] != nil { return self }
        for name in machine.order {
            guard let nested = records[name]?.runtime.supervisor else { continue }
            if let found = await nested.supervisor(of: child) { return found }
        }
        return nil
    }

    /// The nested supervisor (or pool) with this name, searched depth-first through the tree.
    public func supervisor(named name: String) async -> Supervisor? {
        if name == self.name { return self }
        for child in machine.order {
            guard let nested = records[child]?.runtime.supervisor else { continue }
            if let found = await nested.supervisor(named: name) { return found }
        }
        return nil
    }

    /// Removes every child for good (the supervisor itself is being deleted from its parent).
    func removeAll() async {
        for name in machine.order {
            await records[name]?.runtime.remove()
        }
        records = [:]
    }
}

/// A child as its supervisor lists it.
public struct ChildInfo: Sendable, Hashable {
    /// Where a child is in its life.
    public enum Status: String, Sendable, Hashable, Codable {
        /// An incarnation is running.
        case running
        /// An incarnation waits out its restart delay.
        case restarting
        /// The shutdown ladder is stopping it.
        case stopping
        /// Stopped on purpose (terminated, or its supervisor shut down).
        case stopped
        /// Ended on its own and was not restarted (a transient child that returned normally).
        case exited
    }

    /// The child's name.
    public var name: String
    /// The agent's type, or "Supervisor" for nested supervisors and pools.
    public var typeName: String
    /// Its restart type.
    public var restart: ChildSpec.Restart
    /// Its status.
    public var status: Status
    /// The number of its latest incarnation (0 if never started).
    public var incarnation: UInt64
    /// How many times it has been restarted since its supervisor started.
    public var restarts: Int
    /// Messages waiting in its mailbox.
    public var mailboxDepth: Int
    /// Whether it is passivated: a running handler-style agent with nothing to do, holding no task until a message
    /// (or a stop request) arrives.
    public var isPassivated: Bool
    /// A nested supervisor's children; empty for agents.
    public var children: [ChildInfo] = []
}

/// Child counts, like OTP's `count_children`.
public struct ChildCount: Sendable, Hashable {
    /// All children, running or not.
    public var specs = 0
    /// Children with a live incarnation.
    public var active = 0
    /// Children that are supervisors (including pools).
    public var supervisors = 0
    /// Children that are agents.
    public var workers = 0

    /// Creates a count.
    public init(specs: Int = 0, active: Int = 0, supervisors: Int = 0, workers: Int = 0) {
        self.specs = specs
        self.active = active
        self.supervisors = supervisors
        self.workers = workers
    }
}

/// A nested supervisor (or a pool's supervisor) as a child of another supervisor.
@usableFromInline
final class SupervisorChild: ChildRuntime {
    let nested: Supervisor

    @usableFromInline func startFreshOnce() {}

    init(_ supervisor: Supervisor) { self.nested = supervisor }

    @usableFromInline
    var name: String { nested.name }
    @usableFromInline
    var typeName: String { "Supervisor" }
    @usableFromInline
    var supervisor: Supervisor? { nested }
    @usableFromInline
    var mailboxDepth: Int { 0 }

    @usableFromInline
    var isPassivated: Bool { false }

    @usableFromInline
    func run(_ incarnation: Incarnation) async -> ExitReason? {
        do {
            try await nested.run(incarnation: incarnation)
            if incarnation.isStopping { return .stopped }
            return Task.isCancelled ? .cancelled : .normal
        } catch {
            return .failed(error)
        }
    }

    @usableFromInline
    func requestStop(_ incarnation: Incarnation) {
        incarnation.requestStop()
        nested.requestShutdownIfRunning()
    }

    @usableFromInline
    func cancel(_ incarnation: Incarnation) {
        incarnation.cancel()
    }

    @usableFromInline
    func setAccepting(_ accepting: Bool) {}

    @usableFromInline
    func remove() async {
        nested.environment.registry.unregister(nested.name)
        await nested.removeAll()
    }
}
