public import FoundationEssentials
public import Logging
import Dispatch
import DequeModule
import Synchronization

/// Something that happened to an agent or supervisor in a run.
///
/// Every event is logged through swift-log and delivered to every ``Run/events(bufferingNewest:)`` sequence and
/// event sink.
public struct Event: Sendable, CustomStringConvertible {
    /// What happened.
    public enum Kind: Sendable, CustomStringConvertible {
        /// An incarnation started and is about to handle messages.
        case started
        /// An incarnation ended.
        case exited(ExitReason)
        /// The supervisor will start a new incarnation after `delay`; `restarts` counts this child's restarts.
        case restarting(after: Duration, restarts: Int)
        /// A supervisor exceeded its restart intensity, stopped its children and failed to its parent.
        case escalated(restarts: Int, within: Duration)
        /// A message that crashed the agent `failures` times was set aside.
        case deadLettered(error: String, failures: Int)
        /// A child was stopped on request and will not be restarted (terminated, deleted, or shut down).
        case stopped
        /// A child did not stop within its graceful deadline (or was stopped without one) and ended when its task
        /// was cancelled, the ladder's second rung (OTP's `killed`, as opposed to `shutdown`).
        case killed
        /// A child ignored cancellation past its deadline and was left behind; it may still be running.
        case abandoned
        /// A checkpoint was written.
        case checkpointed(sequence: UInt64)
        /// The agent's checkpoint cannot be read: the agent is stopped and not restarted; the checkpoint is kept.
        case quarantined(error: String)
        /// A fact about the run, under its root supervisor's name: the process that drove it died without ending it,
        /// at the time of the event (its last heartbeat). `process` says which (`pid N on HOST`).
        case processLost(process: String)
        /// A fact about the run: this process (`process`) took it over and resumes it from its checkpoints.
        case resumed(process: String)
        /// A fact about the run: an operator's command was applied, with who asked, why, and its result.
        case commandApplied(OperatorCommand)
        /// A line of the agent's logger (``AgentContext/logger``), kept in the run's log (`troupe logs`).
        case logged(level: Logger.Level, message: String)

        public var description: String {
            switch self {
            case .started: "started"
            case .exited(let reason): "exited (\(reason))"
            case .restarting(let delay, let restarts): "restarting after \(delay) (restart \(restarts))"
            case .escalated(let restarts, let period): "escalated after \(restarts) restarts within \(period)"
            case .deadLettered(let error, let failures): "dead-lettered a message after \(failures) crashes: \(error)"
            case .stopped: "stopped"
            case .killed: "killed (cancelled after its graceful deadline)"
            case .abandoned: "abandoned (ignored cancellation past its deadline)"
            case .checkpointed(let sequence): "checkpointed #\(sequence)"
            case .quarantined(let error): "quarantined: \(error)"
            case .processLost(let process): "process lost: \(process)"
            case .resumed(let process): "resumed by \(process)"
            case .commandApplied(let command): "command: \(Event.Kind.commandApplied(command).detail)"
            case .logged(let level, let message): "\(level): \(message)"
            }
        }
    }

    /// The run.
    public var run: RunID
    /// The agent's or supervisor's name.
    public var name: String
    /// The incarnation the event concerns (0 for a supervisor's own events).
    public var incarnation: UInt64
    /// What happened.
    public var kind: Kind
    /// When, by the wall clock.
    public var time: Date

    /// Creates an event.
    public init(run: RunID, name: String, incarnation: UInt64, kind: Kind, time: Date = Date()) {
        self.run = run
        self.name = name
        self.incarnation = incarnation
        self.kind = kind
        self.time = time
    }

    public var description: String { "\(name)#\(incarnation) \(kind)" }
}

/// Fans events out to the logger, to synchronous sinks and to async subscribers.
final class EventBus: Sendable {
    private struct State {
        var subscribers: [UInt64: AsyncStream<Event>.Continuation] = [:]
        var sinks: [(sink: @Sendable (Event) -> Void, checkpoints: Bool)] = []
        /// Sinks fed on threads of their own, finished by ``finish()`` and awaited by ``drained()``.
        var pumps: [SinkPump] = []
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())
    /// Subscribers plus sinks, read without the lock on the hot path.
    private let listeners = Atomic<Int>(0)
    /// Those of them that take checkpoint events: a checkpoint (one per loop-style commit) builds no event unless
    /// one does.
    private let checkpointListeners = Atomic<Int>(0)
    private let logger: Logger
    let run: RunID

    init(run: RunID, logger: Logger) {
        self.run = run
        self.logger = logger
    }

    deinit {
        // A run that never ran: let the sinks' threads end.
        for pump in state.withLock({ $0.pumps }) { pump.finish() }
    }

    /// Counts the events that change the tree (everything but checkpoints): the run's controller republishes the
    /// tree snapshot only when it moved.
    let treeChanges = Atomic<UInt64>(0)

    func emit(_ name: String, incarnation: UInt64, _ kind: Event.Kind, at time: Date? = nil) {
        switch kind {
        case .checkpointed, .logged: break
        default: treeChanges.add(1, ordering: .relaxed)
        }
        let level = Self.level(of: kind)
        // A logged line went to the logger already.
        let logged: Bool = if case .logged = kind { false } else { logger.logLevel <= level }
        let checkpoint = if case .checkpointed = kind { true } else { false }
        let listened = checkpoint
            ? checkpointListeners.load(ordering: .relaxed) > 0
            : listeners.load(ordering: .relaxed) > 0
        guard logged || listened else { return }
        let event = Event(run: run, name: name, incarnation: incarnation, kind: kind, time: time ?? Date())
        if logged {
            logger.log(
                level: level,
                "\(kind)",
                metadata: [
                    "troupe.agent.name": .string(name),
                    "troupe.agent.incarnation": .stringConvertible(incarnation),
                ]
            )
        }
        guard listened else { return }
        let (subscribers, sinks, pumps) = state.withLock { (Array($0.subscribers.values), $0.sinks, $0.pumps) }
        for (sink, checkpoints) in sinks where checkpoints || !checkpoint { sink(event) }
        for pump in pumps { pump.push(event) }
        for subscriber in subscribers { subscriber.yield(event) }
    }

    func subscribe(bufferingNewest limit: Int) -> AsyncStream<Event> {
        let (stream, continuation) = AsyncStream<Event>.makeStream(bufferingPolicy: .bufferingNewest(limit))
        let id = state.withLock { state in
            state.nextID += 1
            state.subscribers[state.nextID] = continuation
            return state.nextID
        }
        listeners.add(1, ordering: .relaxed)
        checkpointListeners.add(1, ordering: .relaxed)
        continuation.onTermination = { [weak self] _ in
            guard let self else { return }
            let removed = self.state.withLock { $0.subscribers.removeValue(forKey: id) }
            if removed != nil {
                self.listeners.subtract(1, ordering: .relaxed)
                self.checkpointListeners.subtract(1, ordering: .relaxed)
            }
        }
        return stream
    }

    /// Adds a sink called synchronously on the emitting thread: for the engine's own non-blocking consumers (the
    /// store's event log, which only enqueues). With `checkpoints` false, it is not given checkpoint events.
    func addSink(checkpoints: Bool = true, _ sink: @escaping @Sendable (Event) -> Void) {
        state.withLock { $0.sinks.append((sink, checkpoints)) }
        listeners.add(1, ordering: .relaxed)
        if checkpoints { checkpointListeners.add(1, ordering: .relaxed) }
    }

    /// Adds a sink fed from a bounded buffer by a thread of its own, so that a slow sink (a terminal, a pipe that
    /// nobody reads) holds up neither an agent nor a supervisor, nor a thread of Swift's cooperative pool. When
    /// more than `limit` events wait, the oldest are dropped.
    func addBufferedSink(limit: Int, _ sink: @escaping @Sendable (Event) -> Void) {
        let pump = SinkPump(limit: limit, sink: sink)
        state.withLock { $0.pumps.append(pump) }
        listeners.add(1, ordering: .relaxed)
        checkpointListeners.add(1, ordering: .relaxed)
    }

    /// Waits until every buffered sink has been handed every event (call after ``finish()``), even when the
    /// waiting task is cancelled: a cancelled run's last events (its agents' exits) still reach its sinks before
    /// ``Run/run()`` returns. The pumps end by themselves once they have handed over what they hold.
    func drained() async {
        let pumps = state.withLock { $0.pumps }
        guard !pumps.isEmpty else { return }
        // An unstructured task does not inherit the caller's cancellation, which would end the waits at once.
        await Task { for pump in pumps { _ = await pump.done.wait() } }.value
    }

    func finish() {
        let (subscribers, pumps) = state.withLock { (Array($0.subscribers.values), $0.pumps) }
        for subscriber in subscribers { subscriber.finish() }
        for pump in pumps { pump.finish() }
    }

    private static func level(of kind: Event.Kind) -> Logger.Level {
        switch kind {
        case .started, .stopped: .debug
        case .checkpointed: .trace
        case .exited(let reason): reason.isFailure ? .warning : .debug
        case .restarting: .info
        case .killed: .warning
        case .escalated, .deadLettered, .abandoned, .quarantined: .error
        case .processLost: .warning
        case .resumed, .commandApplied: .notice
        case .logged(let level, _): level
        }
    }
}

/// One buffered event sink: a bounded queue, and a thread of its own that hands the queued events to the sink in
/// order.
final class SinkPump: Sendable {
    private struct Queue {
        var events: Deque<Event> = []
        var finished = false
    }

    private let queue = Mutex(Queue())
    private let ready = DispatchSemaphore(value: 0)
    private let limit: Int
    private let sink: @Sendable (Event) -> Void
    /// Set if the thread could not be started: events then go to the sink on the emitting thread, since a slow
    /// emitter is better than lost events.
    private let inline = Atomic<Bool>(false)
    /// Fulfilled once the sink has been handed every event pushed before ``finish()``.
    let done = OneShot<Void>()

    init(limit: Int, sink: @escaping @Sendable (Event) -> Void) {
        precondition(limit > 0, "an event sink needs room for at least one event (got \(limit))")
        self.limit = limit
        self.sink = sink
        if startThread(named: "troupe-events", { [self] in pump() }) != nil {
            inline.store(true, ordering: .sequentiallyConsistent)
            done.fulfill(())
        }
    }

    func push(_ event: Event) {
        if inline.load(ordering: .relaxed) { return sink(event) }
        let accepted = queue.withLock { queue -> Bool in
            guard !queue.finished else { return false }
            if queue.events.count >= limit { queue.events.removeFirst() }
            queue.events.append(event)
            return true
        }
        if accepted { ready.signal() }
    }

    func finish() {
        queue.withLock { $0.finished = true }
        ready.signal()
    }

    private func pump() {
        while true {
            ready.wait()
            let (events, finished) = queue.withLock { queue in
                defer { queue.events.removeAll(keepingCapacity: true) }
                return (queue.events, queue.finished)
            }
            for event in events { sink(event) }
            if finished { break }
        }
        done.fulfill(())
    }
}
