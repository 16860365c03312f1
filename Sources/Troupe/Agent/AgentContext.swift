public import FoundationEssentials
public import Logging
public import Synchronization
import Instrumentation
import Tracing

/// An agent's view of its run: who it is, how to reach other agents, its clock, its logger and its checkpoints.
///
/// Each incarnation gets a fresh context. It is `Sendable`, so an agent may hand it to child tasks it starts (to
/// fan out work that sends results back, for instance), but it belongs to one incarnation: once that incarnation
/// has ended, ``isStopping`` is true and the agent should not keep using it.
///
/// ## Topics
/// ### Identity
/// - ``name``
/// - ``id``
/// - ``incarnation``
/// - ``address``
/// ### Messaging
/// - ``send(_:to:)-(_,String)``
/// - ``trySend(_:to:)-(_,String)``
/// - ``address(of:as:)``
/// - ``call(_:timeout:_:)-(String,_,_)``
/// - ``publish(_:to:)``
/// - ``subscribe(to:_:)``
/// - ``messages``
/// ### Time, state and stopping
/// - ``sleep(for:)``
/// - ``checkpoint(_:)``
/// - ``isStopping``
/// - ``deliveryAttempt``
/// ### Work off the agents' threads
/// - ``offload(_:)``
public final class AgentContext<A: Agent>: Sendable {
    @usableFromInline let cell: AgentCell<A>
    @usableFromInline let incarnationControl: Incarnation
    @usableFromInline let _resources: A.Resources?
    /// The delivery attempt of the message being handled. An atomic outside ``work``'s lock: the handler loop sets
    /// it for every message, ephemeral agents' included, whose hot path takes no lock.
    @usableFromInline let attempt = Atomic<Int>(1)
    /// Set when the default handler loop returned with a state that is already saved (see
    /// ``passivatingHandlerLoop(state:)``).
    @usableFromInline let stateIsSaved = Atomic<Bool>(false)
    /// What the incarnation has taken, sent and recorded since its last commit, under one lock.
    @usableFromInline let work: UnitOfWork<A.Message>

    private let cachedLogger = Mutex<Logger?>(nil)

    /// The agent's logger, carrying `troupe.run.id`, `troupe.agent.name` and `troupe.agent.incarnation` metadata.
    /// Its lines go to the run's logger (``Run/Configuration/logger``, at its level) and, from
    /// ``Run/Configuration/storedLogLevel`` up, to the run's event log as `log` events (`troupe logs`).
    ///
    /// Built on first use, so that agents that never log (most idle ones) do not pay for its metadata.
    public var logger: Logger {
        cachedLogger.withLock { cached in
            if let logger = cached { return logger }
            var logger = cell.environment.logger
            logger[metadataKey: "troupe.agent.name"] = .string(cell.name)
            logger[metadataKey: "troupe.agent.incarnation"] = .stringConvertible(incarnationControl.number)
            if let stored = cell.environment.storedLogLevel {
                logger.handler = RunLogHandler(
                    base: logger.handler, stored: stored, events: cell.environment.events, agent: cell.name,
                    incarnation: incarnationControl.number
                )
            }
            cached = logger
            return logger
        }
    }

    /// - Parameter work: The incarnation's unit of work, shared by its `setUp` context and its own.
    @usableFromInline
    init(cell: AgentCell<A>, incarnation: Incarnation, resources: A.Resources?, work: UnitOfWork<A.Message>) {
        self.cell = cell
        self.incarnationControl = incarnation
        self._resources = resources
        self.work = work
    }

    // MARK: Identity

    /// The agent's name, unique within its run.
    public var name: String { cell.name }

    /// The agent's identity: run and name.
    public var id: AgentID { cell.id }

    /// This incarnation's number: 1 for the first start, one more for every restart.
    public var incarnation: UInt64 { incarnationControl.number }

    /// The agent's own address, which stays the same across its restarts. A durable agent's sends through it join
    /// its unit of work, as ``send(_:to:)-(_,String)`` does.
    public var address: Address<A.Message> { typedAddress(cell.mailbox) }

    /// An address to `mailbox` that, for a durable agent, stages its sends until the agent commits.
    func typedAddress<Message: Sendable>(_ mailbox: Mailbox<Message>) -> Address<Message> {
        guard cell.durability == .durable else { return Address(mailbox) }
        let name = mailbox.name
        return Address(mailbox) { [self] message in try stage(message, to: name) }
    }

    /// What ``Agent/setUp(context:)`` acquired for this incarnation.
    ///
    /// - Important: Not available inside ``Agent/setUp(context:)`` itself, which is what produces it.
    @inlinable
    public var resources: A.Resources {
        // Lent, not copied: a handler that sends through an address in its resources would otherwise retain and
        // release that address's mailbox for every message, a reference count that the receiving agent's core
        // writes next to (the mailbox's lock) — a third of a 4-stage pipeline's time went to that cache line.
        _read {
            if _resources == nil {
                preconditionFailure("\(A.self).resources was read inside setUp(context:), before it returned them")
            }
            yield _resources.unsafelyUnwrapped
        }
    }

    /// How many times the message being handled has been delivered: 1 the first time, more after it crashed an
    /// earlier incarnation. Meaningful inside ``HandlerAgent/handle(_:state:context:)``.
    public var deliveryAttempt: Int { attempt.load(ordering: .relaxed) }

    /// Whether this incarnation has been asked to stop (graceful shutdown, termination, or a restart of its
    /// siblings). A loop-style agent should return soon after this becomes true.
    @inlinable
    public var isStopping: Bool { incarnationControl.isStopping }

    /// Ends this incarnation normally after the message being handled: the handler loop commits what was handled
    /// and returns, and the agent exits with ``ExitReason/normal``; for a loop-style agent, ``messages`` ends.
    ///
    /// What happens next is the agent's restart type's: a ``ChildSpec/Restart/transient`` or
    /// ``ChildSpec/Restart/temporary`` agent stays ended (the way for a stream's last consumer to say it is done, so
    /// that its run can complete); a ``ChildSpec/Restart/permanent`` one is restarted. Messages still queued wait in
    /// its mailbox (and, for a durable agent, in the store).
    public func finish() {
        incarnationControl.finishing.store(true, ordering: .relaxed)
    }

    // MARK: Messaging

    /// Sends a message to the agent (or pool) registered as `name`, suspending while its mailbox is full.
    ///
    /// - Parameters:
    ///   - message: A message of the recipient's own type.
    ///   - name: The recipient's name in this run.
    /// - Throws: ``TroupeError/Code/unknownAddress`` if nobody has that name, ``TroupeError/Code/wrongMessageType``
    ///   if the recipient takes another type, ``TroupeError/Code/addressStopped`` if it is stopped, and
    ///   `CancellationError` if this task is cancelled while waiting for room.
    public func send<Message: Sendable>(_ message: Message, to name: String) async throws {
        if cell.durability == .durable { return try stage(message, to: name) }
        try await cell.environment.registry.send(message, to: name)
    }

    /// Holds a durable agent's message until the agent commits: see ``Durability/durable``.
    @usableFromInline
    func stage<Message: Sendable>(_ message: Message, to name: String) throws {
        let target = try cell.environment.registry.resolve(name, as: Message.self)
        // A message to itself must not wait for room in its own mailbox, which only it empties.
        let toSelf = ObjectIdentifier(target) == ObjectIdentifier(cell.mailbox)
        // The sender's trace, delivered with the message when the unit of work commits.
        let trace = target.traces == nil ? nil : InstrumentationContext.current
        let outgoing: Outgoing
        if let durable = target.durable {
            outgoing = Outgoing(recipient: target.name, payload: try durable.encode(message), trace: trace) { id in
                await target.deliverCommitted(target.envelope(message, id: id, trace: trace), force: toSelf)
            }
        } else {
            outgoing = Outgoing(recipient: target.name, payload: nil, trace: nil) { _ in
                await target.deliverCommitted(target.envelope(message, id: 0, trace: trace), force: toSelf)
            }
        }
        work.stage(outgoing)
    }

    /// Sends a message only if the recipient's mailbox has room.
    ///
    /// - Returns: `false` if the mailbox is full; the message was not delivered.
    /// - Throws: As ``send(_:to:)-(_,String)``, except that it never waits.
    @discardableResult
    public func trySend<Message: Sendable>(_ message: Message, to name: String) throws -> Bool {
        if cell.durability == .durable {
            try stage(message, to: name)
            return true
        }
        return try cell.environment.registry.trySend(message, to: name)
    }

    /// Resolves a name to a typed ``Address`` once, for sending many messages without a lookup each.
    ///
    /// For a ``Durability/durable`` agent, sends through the address join the agent's unit of work exactly as
    /// ``send(_:to:)-(_,String)`` does: they are delivered when the agent commits, and never if it crashes first.
    ///
    /// - Throws: ``TroupeError/Code/unknownAddress`` or ``TroupeError/Code/wrongMessageType``.
    public func address<Message: Sendable>(of name: String, as type: Message.Type = Message.self) throws
        -> Address<Message>
    {
        typedAddress(try cell.environment.registry.mailbox(name, as: type))
    }

    /// Sends a request and waits for its reply, like `gen_server:call`.
    ///
    /// ```swift
    /// let total = try await context.call("counter", timeout: .seconds(1)) { reply in .report(reply) }
    /// ```
    ///
    /// - Parameters:
    ///   - name: The recipient's name.
    ///   - timeout: How long to wait, including any wait for room in the recipient's mailbox.
    ///   - makeMessage: Builds the request around the ``Reply`` the recipient must answer.
    /// - Returns: The recipient's answer.
    /// - Throws: ``TroupeError/Code/timeout`` if no answer came in time, ``TroupeError/Code/noReply`` if the
    ///   recipient answered with ``Reply/fail(_:)``, and the errors of ``send(_:to:)-(_,String)``.
    public func call<Message: Sendable, Value: Sendable>(
        _ name: String,
        timeout: Duration,
        _ makeMessage: (Reply<Value>) -> Message
    ) async throws -> Value {
        try await cell.environment.call(name, timeout: timeout, makeMessage)
    }

    /// Delivers `value` to every subscriber of `topic`, with backpressure.
    ///
    /// - Returns: How many subscribers received it (stopped subscribers are skipped).
    @discardableResult
    public func publish<Payload: Sendable>(_ value: Payload, to topic: Topic<Payload>) async throws -> Int {
        try await cell.environment.registry.publish(value, to: topic)
    }

    /// Subscribes this agent to `topic`: each published value is turned into a message by `transform` and put in
    /// this agent's mailbox.
    ///
    /// The subscription belongs to the agent's name and survives its restarts; subscribing again replaces it.
    public func subscribe<Payload: Sendable>(
        to topic: Topic<Payload>,
        _ transform: @escaping @Sendable (Payload) -> A.Message
    ) {
        let mailbox = cell.mailbox
        cell.environment.registry.subscribe(name, to: topic) { payload in
            try await mailbox.send(transform(payload))
        }
    }

    /// Ends this agent's subscription to `topic`.
    public func unsubscribe<Payload: Sendable>(from topic: Topic<Payload>) {
        cell.environment.registry.unsubscribe(name, from: topic)
    }

    /// This agent's mailbox as an asynchronous sequence, for loop-style agents.
    ///
    /// The sequence ends when the agent is asked to stop or its task is cancelled. Messages taken from the mailbox
    /// but not yet consumed when the iteration ends go back to the front of the mailbox.
    public var messages: Messages { Messages(context: self) }

    /// The messages of a loop-style agent; see ``AgentContext/messages``.
    public struct Messages: AsyncSequence, Sendable {
        public typealias Element = A.Message
        let context: AgentContext

        public func makeAsyncIterator() -> Iterator { Iterator(cursor: MessageCursor(context: context)) }

        /// Iterates over the mailbox.
        public struct Iterator: AsyncIteratorProtocol {
            let cursor: MessageCursor<A>

            public mutating func next() async -> A.Message? { await cursor.next() }

            public mutating func next(isolation actor: isolated (any Actor)?) async -> A.Message? {
                await cursor.next()
            }
        }
    }

    // MARK: Time and state

    /// Sleeps on the run's clock; for a checkpointed or durable agent, a durable timer.
    ///
    /// A checkpointed or durable agent records the deadline (wall-clock time) in the store as part of its unit of
    /// work, like a ``step(_:_:)``. When the unit runs again — after a crash, a `kill -9` and a resume, or a
    /// graceful stop and a resume — its first sleep wakes at the recorded deadline, at once if it has passed,
    /// instead of sleeping the whole interval again. A loop that sleeps right after its checkpoint (poll, then
    /// checkpoint, then sleep) keeps its cadence across restarts that way. An ephemeral agent just sleeps.
    ///
    /// - Throws: `CancellationError` as soon as the agent is asked to stop or its task is cancelled, so that a
    ///   polling loop ends promptly (the engine counts that as a clean stop); the store's errors when recording.
    public func sleep(for duration: Duration) async throws {
        guard cell.durability.persistsState, duration > .zero else { return try await sleepOnClock(duration) }
        try await sleep(recording: Date().addingTimeInterval(duration.seconds))
    }

    /// Sleeps until a wall-clock time; for a checkpointed or durable agent, a durable timer (see ``sleep(for:)``):
    /// the deadline recorded is the one the unit of work first asked for.
    ///
    /// - Throws: As ``sleep(for:)``.
    public func sleep(until deadline: Date) async throws {
        guard cell.durability.persistsState else { return try await sleepOnClock(Self.remaining(until: deadline)) }
        try await sleep(recording: deadline)
    }

    /// The deadline of the durable timer a stop interrupted, which the incarnation's final commit carries over to
    /// the next unit of work (see ``AgentCell/runIncarnation(_:)``).
    @usableFromInline let interruptedTimer = Mutex<Date?>(nil)

    private func sleepOnClock(_ duration: Duration) async throws {
        guard await incarnationControl.sleep(for: duration, clock: cell.environment.clock) else {
            throw CancellationError()
        }
    }

    private static func remaining(until deadline: Date) -> Duration {
        .milliseconds(max(0, Int64((deadline.timeIntervalSinceNow * 1000).rounded(.up))))
    }

    /// Sleeps until the deadline an earlier attempt of this unit recorded, else records `wanted` and sleeps until it.
    private func sleep(recording wanted: Date) async throws {
        let (key, recorded) = work.nextTimer(fallback: "c\(cell.currentSequence)")
        var deadline = wanted
        if let recorded, let milliseconds = Int64(String(decoding: recorded, as: UTF8.self)) {
            deadline = Date(milliseconds: milliseconds)
        } else {
            try await recordTimer(deadline, key: key)
        }
        let box = cell.waitsBox()
        box.waiting = Waiting(what: "timer", since: Date(), until: deadline)
        defer { box.waiting = nil }
        do {
            try await sleepOnClock(Self.remaining(until: deadline))
        } catch {
            interruptedTimer.withLock { $0 = deadline }
            throw error
        }
    }

    /// Stores a durable timer's deadline (milliseconds since 1970) under `key`.
    @usableFromInline
    func recordTimer(_ deadline: Date, key: String) async throws {
        try await cell.environment.store.recordStep(
            cell.id,
            epoch: incarnationControl.epoch.load(ordering: .relaxed),
            key: key,
            result: Array(String(deadline.milliseconds).utf8)
        )
    }

    /// Saves `state` as the point a restarted incarnation resumes from.
    ///
    /// Ephemeral agents keep it in memory; checkpointed and durable agents write it to the run's
    /// ``CheckpointStore``. A durable agent commits, in the same transaction, the messages it took from
    /// ``messages`` and the messages it sent since its last checkpoint; the sent messages are delivered only
    /// then. Handler-style agents need not call this: the engine commits after every batch of messages.
    ///
    /// - Throws: ``TroupeError/Code/fenced`` if this incarnation has been replaced, and the store's errors.
    public func checkpoint(_ state: A.State) async throws {
        try await commit(state, announce: true)
    }

    /// Commits `state` with the durable messages consumed and sent since the last commit.
    @usableFromInline
    func commit(_ state: A.State, consumed: [Int64] = [], announce: Bool) async throws {
        guard let tracing = cell.environment.tracing else { return try await commitUntraced(state, consumed: consumed, announce: announce) }
        try await tracing.span("commit", attributes: { attributes in
            attributes["troupe.agent.name"] = cell.name
            attributes["troupe.commit.messages"] = consumed.count
        }) { _ in
            try await commitUntraced(state, consumed: consumed, announce: announce)
        }
    }

    @usableFromInline
    func commitUntraced(_ state: A.State, consumed: [Int64], announce: Bool) async throws {
        var consumed = consumed
        let (sent, signals) = work.takeForCommit(consumed: &consumed)
        let sequence = cell.currentSequence
        do {
            try await cell.commit(state, incarnationControl, consumed: consumed, outbox: sent, signals: signals, announce: announce)
        } catch {
            work.restoreAfterFailedCommit(signals: signals)
            throw error
        }
        work.committed(consumed: consumed, sequence: sequence, signals: signals)
    }

    // MARK: Durable steps

    /// Runs an external call once per unit of work, recording its result so that a unit handled again after a
    /// crash replays the result instead of calling again (durable execution, as in DBOS).
    ///
    /// ```swift
    /// let quote = try await context.step("quote") { step in
    ///     try await context.http.execute(.get(url, headers: [("Idempotency-Key", step.idempotencyKey)])).decode(Quote.self)
    /// }
    /// ```
    ///
    /// A unit of work is one durable message (handler style) or the stretch since the last checkpoint (loop style,
    /// and checkpointed handler agents). The result is stored as soon as `body` returns, in its own transaction;
    /// the commit that finishes the unit deletes it.
    ///
    /// - Important: The boundary is at-least-once: a call in flight when the process dies (or whose result was not
    ///   stored yet) runs again. Pass ``DurableStep/idempotencyKey`` to the service, which stays the same for
    ///   every attempt of the step. Ephemeral agents record nothing: their steps run every time.
    /// - Parameters:
    ///   - name: The step's name; repeated names in one unit are numbered in order.
    ///   - body: The call. Its result must be `Codable`.
    /// - Returns: The result, fresh or replayed.
    /// - Throws: What `body` throws, the store's errors, or ``TroupeError/Code/corruptCheckpoint`` if a recorded
    ///   result no longer decodes as `T`.
    public func step<T: Codable & Sendable>(_ name: String, _ body: (DurableStep) async throws -> T) async throws -> T {
        guard let tracing = cell.environment.tracing else { return try await untracedStep(name, body) }
        return try await tracing.span("step \(name)") { span in
            span.attributes["troupe.agent.name"] = cell.name
            return try await untracedStep(name, body)
        }
    }

    private func untracedStep<T: Codable & Sendable>(_ name: String, _ body: (DurableStep) async throws -> T) async throws -> T {
        let (key, recorded) = work.nextStep(name, fallback: "c\(cell.currentSequence)")
        let step = DurableStep(name: name, idempotencyKey: "\(cell.id)/\(key)")
        guard cell.durability.persistsState else { return try await body(step) }
        if let recorded {
            do {
                return try JSONDecoder().decode(T.self, from: Data(recorded))
            } catch {
                throw TroupeError(
                    .corruptCheckpoint,
                    "the recorded result of step '\(name)' of '\(cell.name)' does not decode as \(T.self) (\(error)). "
                        + "The step's result type changed while a unit of work was in flight.",
                    underlying: error
                )
            }
        }
        let result = try await body(step)
        let encoded = try CompactJSON.encode(result)
        try await cell.environment.store.recordStep(
            cell.id,
            epoch: incarnationControl.epoch.load(ordering: .relaxed),
            key: key,
            result: encoded
        )
        work.record(key, result: encoded)
        return result
    }

    /// Gives back what a durable incarnation took and never committed: its messages go back to the front of the
    /// mailbox, the messages it sent are dropped (they were never seen).
    @usableFromInline
    func abandonUncommitted() {
        cell.mailbox.requeueFront(work.abandon())
    }

    /// The first of the run's ``Run/Configuration/services`` of type `type`, if any.
    ///
    /// Modules built on Troupe use it to hand agents their clients: `TroupeHTTP` defines `context.http` this way.
    public func service<Service: Sendable>(_ type: Service.Type) -> Service? {
        for service in cell.environment.services {
            if let match = service as? Service { return match }
        }
        return nil
    }

    // MARK: Work off the agents' threads

    /// Runs CPU-bound or blocking work on a thread outside Swift's cooperative pool, and waits for its result.
    ///
    /// Agents share the cooperative pool, which has one thread per core; a long computation on it stalls every
    /// other agent's message handling. Work offloaded here runs on the run's offload threads
    /// (``Run/Configuration/offloadThreads``), so the agents keep running. The work is not interrupted when the
    /// agent is cancelled.
    ///
    /// - Parameter work: The work. Check ``isStopping`` in long loops to end early.
    /// - Returns: What `work` returned.
    /// - Throws: What `work` threw.
    public func offload<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await cell.environment.offload.run(work)
    }
}

extension AgentContext: MailboxWaker {
    /// Resumes this incarnation when its passivated mailbox gets work.
    @usableFromInline
    func wake() {
        cell.resume(incarnationControl)
    }
}

extension AgentContext where A: HandlerAgent {
    // MARK: The engine's handler loop

    /// Runs the engine's handler loop: hands each message to ``HandlerAgent/handle(_:state:context:)`` until the agent is
    /// asked to stop.
    ///
    /// Messages are taken from the mailbox a whole batch at a time. A handler that throws ends the incarnation:
    /// the state stays at its value after the last message handled successfully, the failing message and the rest
    /// of the batch go back to the front of the mailbox, and the failing message becomes a dead letter once it has
    /// crashed the agent ``AgentOptions/maxDeliveryFailures`` times.
    ///
    /// A ``HandlerAgent``'s default ``Agent/run(state:context:)`` uses a variant of this loop that *passivates* an idle agent: when
    /// the mailbox is empty the incarnation gives up its task, and the next message resumes it on a new one, so
    /// that an idle agent costs memory but no task. Call this method from your own `run` to keep the task instead.
    ///
    /// - Throws: The handler's error, or `CancellationError` when the task is cancelled.
    @inlinable
    public func handleMessages(state: inout A.State) async throws {
        try await cell.handlerLoop(state: &state, context: self, passivating: false)
    }

    /// The default `run`'s loop, which passivates when the mailbox is empty.
    @inlinable
    func passivatingHandlerLoop(state: inout A.State) async throws {
        if !cell.handlerStyleSeen { cell.noteHandlerStyle() }
        try await cell.handlerLoop(state: &state, context: self, passivating: true)
        // The loop returns only with the state of its last commit (durable and checkpointed agents commit every
        // batch), and the default `run` returns right after: the final checkpoint would write the same state
        // again. Skipping it is what lets a tree of idle durable agents stop fast.
        stateIsSaved.store(true, ordering: .relaxed)
    }
}

/// The iteration state behind ``AgentContext/messages``: a batch taken from the mailbox and how far it has been
/// consumed. Unconsumed messages go back to the mailbox when the iteration is dropped.
final class MessageCursor<A: Agent> {
    private let context: AgentContext<A>
    private var batch: [Envelope<A.Message>] = []
    private var index = 0

    init(context: AgentContext<A>) { self.context = context }

    func next() async -> A.Message? {
        while index == batch.count {
            batch.removeAll(keepingCapacity: true)
            index = 0
            if context.incarnationControl.shouldLeave { return nil }
            switch await context.cell.mailbox.receive(into: &batch) {
            case .messages, .parked: break
            case .interrupted: continue
            case .cancelled: return nil
            }
        }
        defer { index += 1 }
        if context.cell.durability == .durable {
            let envelope = batch[index]
            context.work.took(envelope)
        }
        return batch[index].message
    }

    deinit {
        if index < batch.count { context.cell.mailbox.requeueFront(batch[index...]) }
    }
}
