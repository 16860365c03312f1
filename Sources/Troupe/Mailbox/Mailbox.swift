public import CoreMetrics
public import DequeModule
public import Instrumentation
import FoundationEssentials
import Synchronization

/// A message in a mailbox, with how many times delivering it has crashed the agent.
@usableFromInline
struct Envelope<Message: Sendable>: Sendable {
    @usableFromInline var message: Message
    /// The store's identifier (low 48 bits) and the crash count (high 16 bits), in one word: an envelope of a
    /// small message stays small (24 bytes with its trace slot) and holds no reference, which measurably matters
    /// when mailboxes are shifted and copied.
    @usableFromInline var bits: UInt64 = 0
    /// Where the sender's trace context waits in its mailbox's ``TraceSlab`` (0: none), when the run traces. A
    /// number, not the context itself: a context holds a reference, and envelopes that need reference counting
    /// cost the message path a quarter of its speed (`troupe-bench messages_1to1`, 23 → 17 M/s).
    @usableFromInline var traceSlot: UInt32 = 0

    @inlinable init(_ message: Message) { self.message = message }

    @inlinable init(_ message: Message, id: Int64) {
        self.message = message
        self.bits = UInt64(id) & Self.idMask
    }

    @usableFromInline static var idMask: UInt64 { (1 << 48) - 1 }

    /// Deliveries of this message that ended with the agent crashing (saturates at 65,535).
    @inlinable var failures: Int32 {
        get { Int32(bits >> 48) }
        set { bits = (bits & Self.idMask) | (UInt64(min(max(newValue, 0), 65_535)) << 48) }
    }

    /// The store's identifier of a durable message, until its recipient commits having handled it; 0 otherwise.
    @inlinable var id: Int64 { Int64(bits & Self.idMask) }
}

/// How a durable agent's mailbox stores what it is sent before accepting it.
@usableFromInline
final class DurableInbox<Message: Sendable>: Sendable {
    /// Encodes a message for the store.
    @usableFromInline let encode: @Sendable (Message) throws -> [UInt8]
    /// Stores an encoded message for this mailbox's agent, with its sender's trace context when the run traces, and
    /// returns its identifier, once committed.
    @usableFromInline let store: @Sendable ([UInt8], InstrumentationContext?) async throws -> Int64

    init(
        encode: @escaping @Sendable (Message) throws -> [UInt8],
        store: @escaping @Sendable ([UInt8], InstrumentationContext?) async throws -> Int64
    ) {
        self.encode = encode
        self.store = store
    }
}

/// The type-erased face of a mailbox, as the registry and the supervisor see it.
protocol AnyMailbox: AnyObject, Sendable {
    var name: String { get }
    var messageType: Any.Type { get }
    /// Messages queued plus senders parked waiting for room.
    var depth: Int { get }
    /// Lets senders in again (`true`), or turns them away and fails the parked ones (`false`).
    func setAccepting(_ accepting: Bool)
    /// Accepts a message from outside the run given as JSON (`troupe send`); see ``Mailbox/accept(json:)``.
    func accept(json: [UInt8]) async throws
}

/// Resumes a passivated consumer: installed when the consumer parks, called once by whoever next gives it work (a
/// sender, an interrupt). An object rather than a closure, so that parking allocates nothing: the agent's context
/// is the waker of its incarnation.
@usableFromInline
protocol MailboxWaker: AnyObject, Sendable {
    func wake()
}

/// A bounded, multi-producer, single-consumer mailbox with backpressure.
///
/// Why not `MultiProducerSingleConsumerAsyncChannel` (measured at about 2.5 M msgs/s here): a buffer that the
/// consumer swaps out whole on each wake-up, behind a short spin-then-yield lock (`SpinLocked`), moved 27-38 M
/// agent messages per second in `troupe-bench`, does not allocate per message, lets the engine put unhandled
/// messages back at the front when an agent crashes, and can passivate its consumer (none of which a channel
/// offers). The mailbox outlives the agent's incarnations: a restarted agent consumes the same mailbox, so its
/// address and its waiting messages survive the restart.
///
/// - Senders append while fewer than `capacity` messages are queued; beyond that a sender parks (suspends) with its
///   message until the consumer drains. Parked senders are admitted in arrival order, so each sender's messages
///   stay in the order it sent them.
/// - The consumer takes everything queued in one step (``receive(into:)``).
///
/// The send paths are `@inlinable` so that they are specialised for each concrete message type in the module that
/// sends (measured: unspecialised generic code costs several times the whole send).
@usableFromInline
final class Mailbox<Message: Sendable>: AnyMailbox {
    @usableFromInline let name: String
    @usableFromInline let capacity: Int

    @usableFromInline
    struct Parked {
        var id: UInt64
        var envelope: Envelope<Message>
        var continuation: UnsafeContinuation<Void, any Error>
    }

    @usableFromInline
    struct State {
        @usableFromInline var buffer: [Envelope<Message>] = []
        @usableFromInline var parked: Deque<Parked> = []
        @usableFromInline var consumer: UnsafeContinuation<Void, Never>?
        /// Set while the consumer is passivated: called (once) by whoever next gives it something to do.
        @usableFromInline var wake: (any MailboxWaker)?
        @usableFromInline var interrupted = false
        @usableFromInline var accepting = true
        /// Why the mailbox refuses messages when it is not simply stopped (a quarantined agent); boxed, so that an
        /// idle mailbox pays one word for it.
        @usableFromInline var refusal: Refusal?
        @usableFromInline var nextID: UInt64 = 0

        @usableFromInline init() {}
    }

    @usableFromInline let state = SpinLocked(State())

    /// Set for a ``Durability/durable`` agent: messages are stored before they are accepted.
    @usableFromInline let durable: DurableInbox<Message>?

    /// Counts the messages sent to it (``EngineMetrics``), when its run records metrics.
    @usableFromInline let sentCounter: Counter?
    /// The senders' trace contexts of the messages in it, when its run traces.
    @usableFromInline let traces: TraceSlab?

    /// A message as sent now: with the sender's trace context when the run traces. (Built inside the send paths'
    /// locks: built before, the envelope cost the message path half its speed, `troupe-bench messages_1to1`.)
    @inlinable
    func envelope(_ message: Message) -> Envelope<Message> {
        var envelope = Envelope(message)
        if let traces { envelope.traceSlot = traces.putCurrent() }
        return envelope
    }

    /// A committed message with `trace`, its sender's trace context when it was sent.
    @usableFromInline
    func envelope(_ message: Message, id: Int64, trace: InstrumentationContext?) -> Envelope<Message> {
        var envelope = id == 0 ? Envelope(message) : Envelope(message, id: id)
        if let traces, let trace { envelope.traceSlot = traces.put(trace) }
        return envelope
    }

    /// The trace context a message came with, taken out of the slab (a message handled again after a crash starts
    /// a trace of its own).
    @inlinable
    func trace(of envelope: Envelope<Message>) -> InstrumentationContext? {
        guard envelope.traceSlot != 0, let traces else { return nil }
        return traces.take(envelope.traceSlot)
    }

    /// Adds to the sent counter (kept out of the inlined send paths). ``send(_:)`` counts before it takes the lock:
    /// counted after its last `await`, the send kept `self` across the suspension and the message path ran at half
    /// its speed even with no metrics recorded (`troupe-bench messages_1to1`, 23 M/s → 10.5 M/s). So a send that
    /// a stopped mailbox refuses is counted too.
    @usableFromInline @inline(never)
    static func count(_ messages: Int, on counter: Counter) {
        counter.increment(by: Int64(messages))
    }

    init(name: String, capacity: Int, durable: DurableInbox<Message>? = nil, sent: Counter? = nil, traced: Bool = false) {
        self.traces = traced ? TraceSlab() : nil
        precondition(capacity > 0, "a mailbox needs a capacity of at least 1 (agent '\(name)')")
        self.name = name
        self.capacity = capacity
        self.durable = durable
        self.sentCounter = sent
    }

    var messageType: Any.Type { Message.self }

    var depth: Int { state.withLock { $0.buffer.count + $0.parked.count } }

    /// Whether the consumer is passivated: its wake hook is installed and no task is consuming.
    var hasParkedConsumer: Bool { state.withLock { $0.wake != nil } }

    // MARK: Sending

    @usableFromInline
    enum SendAction {
        case done
        case wake(UnsafeContinuation<Void, Never>)
        case activate(any MailboxWaker)
        case stopped
        case park(UInt64)
    }

    /// What to do for the consumer after a message was appended: resume it, activate it, or nothing.
    @inlinable
    static func wakeConsumer(_ state: inout State) -> SendAction {
        if let consumer = state.consumer {
            state.consumer = nil
            return .wake(consumer)
        }
        if let wake = state.wake {
            state.wake = nil
            return .activate(wake)
        }
        return .done
    }

    /// Appends `message`, suspending while the mailbox is full.
    ///
    /// - Throws: ``TroupeError/Code/addressStopped`` if the mailbox does not accept messages, or
    ///   `CancellationError` if the sender is cancelled while parked (the message is then not delivered).
    @inlinable
    func send(_ message: Message) async throws {
        if durable != nil { return try await sendDurably(message) }
        if let sentCounter { Self.count(1, on: sentCounter) }
        let action = state.withLock { state -> SendAction in
            guard state.accepting else { return .stopped }
            if state.buffer.count < capacity, state.parked.isEmpty {
                state.buffer.append(envelope(message))
                return Self.wakeConsumer(&state)
            }
            state.nextID &+= 1
            return .park(state.nextID)
        }
        switch action {
        case .done: return
        case .wake(let consumer): consumer.resume()
        case .activate(let waker): waker.wake()
        case .stopped: throw stoppedError()
        case .park(let id): try await park(envelope(message), id: id)
        }
    }

    /// Appends all of `messages` in order, taking the lock once for as many as fit and parking when full.
    @inlinable
    func send(contentsOf messages: some Sequence<Message>) async throws {
        if durable != nil {
            for message in messages { try await send(message) }
            return
        }
        var iterator = messages.makeIterator()
        var pending = iterator.next()
        while let first = pending {
            let action = state.withLock { state -> SendAction in
                guard state.accepting else { return .stopped }
                guard state.buffer.count < capacity, state.parked.isEmpty else {
                    state.nextID &+= 1
                    return .park(state.nextID)
                }
                var next: Message? = first
                var appended = 0
                while let message = next, state.buffer.count < capacity {
                    state.buffer.append(envelope(message))
                    appended += 1
                    next = iterator.next()
                }
                if let sentCounter { Self.count(appended, on: sentCounter) }
                pending = next
                return Self.wakeConsumer(&state)
            }
            switch action {
            case .done: continue
            case .wake(let consumer): consumer.resume()
            case .activate(let waker): waker.wake()
            case .stopped: throw stoppedError()
            case .park(let id):
                try await park(envelope(first), id: id)
                if let sentCounter { Self.count(1, on: sentCounter) }
                pending = iterator.next()
            }
        }
    }

    /// Appends `message` if there is room.
    ///
    /// - Returns: `false` if the mailbox is full; the message is then not delivered.
    /// - Throws: ``TroupeError/Code/addressStopped`` if the mailbox does not accept messages.
    @inlinable
    func trySend(_ message: Message) throws -> Bool {
        if durable != nil { throw TroupeError.durableTrySend(name) }
        let action = state.withLock { state -> SendAction? in
            guard state.accepting else { return .stopped }
            guard state.buffer.count < capacity, state.parked.isEmpty else { return nil }
            state.buffer.append(envelope(message))
            return Self.wakeConsumer(&state)
        }
        switch action {
        case nil: return false
        case .stopped: throw stoppedError()
        case .wake(let consumer): consumer.resume()
        case .activate(let waker): waker.wake()
        case .done, .park: break
        }
        if let sentCounter { Self.count(1, on: sentCounter) }
        return true
    }

    /// A durable agent's `send`: the message is stored first, so that once `send` returns it survives a crash of
    /// the process. Kept out of line so that the in-memory path stays small.
    @usableFromInline
    func sendDurably(_ message: Message) async throws {
        guard let durable, state.withLock({ $0.accepting }) else { throw stoppedError() }
        let trace = traces == nil ? nil : InstrumentationContext.current
        let id = try await durable.store(try durable.encode(message), trace)
        await deliverCommitted(envelope(message, id: id, trace: trace))
    }

    /// Delivers a message whose sending is already committed: waits for room like ``send(_:)``, but never drops
    /// it. If the sender is cancelled while waiting, or the mailbox stops accepting, the message is appended
    /// anyway, past the capacity: the store says it was sent, so the mailbox must hold it.
    @usableFromInline
    func deliverCommitted(_ envelope: Envelope<Message>, force: Bool = false) async {
        if let sentCounter { Self.count(1, on: sentCounter) }
        await appendCommitted(envelope, force: force)
    }

    @usableFromInline
    func appendCommitted(_ envelope: Envelope<Message>, force: Bool) async {
        let action = state.withLock { state -> SendAction in
            if force || !state.accepting || (state.buffer.count < capacity && state.parked.isEmpty) {
                state.buffer.append(envelope)
                return Self.wakeConsumer(&state)
            }
            state.nextID &+= 1
            return .park(state.nextID)
        }
        switch action {
        case .done, .stopped: return
        case .wake(let consumer): consumer.resume()
        case .activate(let waker): waker.wake()
        case .park(let id):
            do {
                try await park(envelope, id: id)
            } catch {
                await appendCommitted(envelope, force: true)
            }
        }
    }

    /// The reason a refusing mailbox gives.
    @usableFromInline
    final class Refusal: Sendable {
        let error: TroupeError
        init(_ error: TroupeError) { self.error = error }
    }

    @usableFromInline
    func stoppedError() -> TroupeError { state.withLock { $0.refusal?.error } ?? TroupeError.addressStopped(name) }

    /// Turns senders away with `error` (and fails the parked ones with it) until the mailbox accepts again.
    func refuse(because error: TroupeError) {
        setAccepting(false, refusal: Refusal(error))
    }

    private enum ParkAction {
        case parked
        case admitted(SendAction)
        case stopped
        case cancelled
    }

    @usableFromInline
    func park(_ envelope: Envelope<Message>, id: UInt64) async throws {
        try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
                let action = state.withLock { state -> ParkAction in
                    guard state.accepting else { return .stopped }
                    if Task.isCancelled { return .cancelled }
                    if state.buffer.count < capacity, state.parked.isEmpty {
                        state.buffer.append(envelope)
                        return .admitted(Self.wakeConsumer(&state))
                    }
                    state.parked.append(Parked(id: id, envelope: envelope, continuation: continuation))
                    return .parked
                }
                switch action {
                case .parked: break
                case .admitted(let action):
                    switch action {
                    case .wake(let consumer): consumer.resume()
                    case .activate(let waker): waker.wake()
                    default: break
                    }
                    continuation.resume()
                case .stopped: continuation.resume(throwing: TroupeError.addressStopped(name))
                case .cancelled: continuation.resume(throwing: CancellationError())
                }
            }
        } onCancel: {
            let parked = state.withLock { state -> Parked? in
                guard let index = state.parked.firstIndex(where: { $0.id == id }) else { return nil }
                return state.parked.remove(at: index)
            }
            parked?.continuation.resume(throwing: CancellationError())
        }
    }

    // MARK: Receiving

    /// Why ``receive(into:)`` returned.
    @usableFromInline
    enum Received: Sendable {
        /// `batch` holds every message that was queued.
        case messages
        /// ``interrupt()`` was called; `batch` is empty.
        case interrupted
        /// The consumer's task was cancelled; `batch` is empty and the messages stay queued.
        case cancelled
        /// Nothing to do: the consumer is passivated, and its wake hook will be called when there is.
        case parked
    }

    @usableFromInline
    enum ReceiveAction {
        case took([UnsafeContinuation<Void, any Error>])
        case interrupted
        case wait
    }

    /// Moves every queued message into `batch` (which must be empty), waiting until there is one.
    ///
    /// Only one task may receive at a time: the agent's current incarnation.
    @inlinable
    func receive(into batch: inout [Envelope<Message>]) async -> Received {
        precondition(batch.isEmpty, "receive(into:) needs an empty batch")
        while true {
            if Task.isCancelled { return .cancelled }
            let received = take(into: &batch, wake: nil)
            guard case .parked = received else { return received }
            await waitForMessages()
        }
    }

    /// Passivates the consumer if it has nothing to do: no message and no pending interrupt. `wake` is then kept and
    /// called once, by the next sender or ``interrupt()``. Returns whether it did. (Inlinable, so that an agent's start
    /// uses code specialised for its message type: unspecialised, it looks up the generic `State`'s metadata.)
    @inlinable
    func parkIfIdle(wake: any MailboxWaker) -> Bool {
        state.withLock { state in
            guard state.buffer.isEmpty, state.parked.isEmpty, !state.interrupted else { return false }
            state.wake = wake
            return true
        }
    }

    /// Moves every queued message into `batch`, or, if there is none, passivates the consumer: `wake` is kept and
    /// called once, by the next sender or ``interrupt()``, and this returns ``Received/parked`` without waiting.
    /// With a `nil` wake it only looks: ``Received/parked`` then means "empty", and nothing will call back.
    @inlinable
    func receiveOrPark(into batch: inout [Envelope<Message>], wake: (any MailboxWaker)?) -> Received {
        precondition(batch.isEmpty, "receiveOrPark(into:wake:) needs an empty batch")
        return take(into: &batch, wake: wake)
    }

    /// Takes what is queued, consumes a pending interrupt, or (finding nothing) installs `wake` and says `parked`.
    @inlinable
    func take(into batch: inout [Envelope<Message>], wake: (any MailboxWaker)?) -> Received {
        let action = state.withLock { state -> ReceiveAction in
            if !state.buffer.isEmpty {
                swap(&batch, &state.buffer)
                return .took(admitParked(&state))
            }
            if state.interrupted {
                state.interrupted = false
                return .interrupted
            }
            state.wake = wake
            return .wait
        }
        switch action {
        case .took(let admitted):
            for sender in admitted { sender.resume() }
            return .messages
        case .interrupted:
            return .interrupted
        case .wait:
            return .parked
        }
    }

    /// Moves parked senders' messages into the (just emptied) buffer, up to capacity.
    @usableFromInline
    func admitParked(_ state: inout State) -> [UnsafeContinuation<Void, any Error>] {
        guard !state.parked.isEmpty else { return [] }
        var admitted: [UnsafeContinuation<Void, any Error>] = []
        while state.buffer.count < capacity, let sender = state.parked.popFirst() {
            state.buffer.append(sender.envelope)
            admitted.append(sender.continuation)
        }
        return admitted
    }

    @usableFromInline
    func waitForMessages() async {
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                let resumeNow = state.withLock { state -> Bool in
                    if !state.buffer.isEmpty || state.interrupted || Task.isCancelled { return true }
                    state.consumer = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let consumer = state.withLock { state -> UnsafeContinuation<Void, Never>? in
                defer { state.consumer = nil }
                return state.consumer
            }
            consumer?.resume()
        }
    }

    /// Wakes the consumer, or makes its next ``receive(into:)`` return ``Received/interrupted`` at once.
    func interrupt() {
        let action = state.withLock { state -> SendAction in
            state.interrupted = true
            return Self.wakeConsumer(&state)
        }
        switch action {
        case .wake(let consumer): consumer.resume()
        case .activate(let waker): waker.wake()
        default: break
        }
    }

    // MARK: The engine's housekeeping

    /// Puts messages back at the front of the queue, ahead of everything waiting, in their original order.
    ///
    /// Used when an incarnation ends part way through a batch: the next incarnation sees them first.
    @usableFromInline
    func requeueFront(_ envelopes: some Collection<Envelope<Message>>) {
        guard !envelopes.isEmpty else { return }
        state.withLock { $0.buffer.insert(contentsOf: envelopes, at: 0) }
    }

    func setAccepting(_ accepting: Bool) {
        setAccepting(accepting, refusal: nil)
    }

    private func setAccepting(_ accepting: Bool, refusal: Refusal?) {
        let refused = state.withLock { state -> [Parked] in
            state.accepting = accepting
            state.refusal = refusal
            guard !accepting else { return [] }
            defer { state.parked.removeAll() }
            return Array(state.parked)
        }
        if !refused.isEmpty {
            let error = refusal?.error ?? TroupeError.addressStopped(name)
            for sender in refused { sender.continuation.resume(throwing: error) }
        }
    }

    /// Closes the mailbox for good and returns what was still queued.
    func close() -> [Envelope<Message>] {
        setAccepting(false)
        return state.withLock { state in
            defer { state.buffer.removeAll() }
            return state.buffer
        }
    }
}

// MARK: Messages from outside the run

extension Mailbox {
    /// Accepts a message given as JSON, as an operator sends it (`troupe send`): decoded as the agent's message
    /// type, stored first if the agent is durable (then delivered even past the capacity: once stored it is sent),
    /// and otherwise delivered only if there is room. It never waits, so an operator's command never waits on an
    /// agent that does not drain its mailbox (a paused one).
    ///
    /// - Throws: ``TroupeError/Code/wrongMessageType`` if the JSON is no message of the agent's type (saying what
    ///   failed to decode, and where), ``TroupeError/Code/busy`` if the mailbox of a non-durable agent is full,
    ///   ``TroupeError/Code/addressStopped`` if it accepts no messages, and the store's errors.
    func accept(json: [UInt8]) async throws {
        let message = try decode(json: json)
        if let durable {
            guard state.withLock({ $0.accepting }) else { throw stoppedError() }
            let id = try await durable.store(try durable.encode(message), nil)
            await deliverCommitted(Envelope(message, id: id), force: true)
            return
        }
        guard try trySend(message) else {
            throw TroupeError(
                .busy,
                "the mailbox of '\(name)' is full (\(capacity) messages); the message was not delivered. Send it again "
                    + "once the agent has drained its mailbox (`troupe tree` shows the depth)."
            )
        }
    }

    /// `json` decoded as the mailbox's message type.
    func decode(json: [UInt8]) throws -> Message {
        func decode<T: Decodable>(_ type: T.Type) throws -> T { try JSONDecoder().decode(type, from: Data(json)) }
        do {
            guard let type = Message.self as? any Decodable.Type, let message = try decode(type) as? Message else {
                throw TroupeError(.wrongMessageType, "agent '\(name)' takes \(String(reflecting: Message.self)), which cannot be decoded from JSON.")
            }
            return message
        } catch let error as DecodingError {
            throw TroupeError(
                .wrongMessageType,
                "the message for '\(name)' is not a \(String(reflecting: Message.self)): \(Self.describe(error)). A message is "
                    + "the JSON encoding of one of its values, such as {\"name\":{}} for `case name` or {\"name\":{\"_0\":5}} "
                    + "for `case name(Int)`."
            )
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
            return keys.isEmpty ? "" : " at '\(keys.joined(separator: "."))'"
        }
        switch error {
        case .typeMismatch(let type, let context):
            // What Codable says of an enum's unknown case: the object's one key is no case it knows.
            if context.debugDescription.hasPrefix("Invalid number of keys") {
                return "it names no case of \(type)\(path(context)) (an enum value is an object whose one key is the case's name)"
            }
            return "expected \(type)\(path(context)) (\(context.debugDescription))"
        case .valueNotFound(let type, let context): return "missing a \(type)\(path(context))"
        case .keyNotFound(let key, let context): return "missing the key '\(key.stringValue)'\(path(context))"
        case .dataCorrupted(let context): return "\(context.debugDescription)\(path(context))"
        @unknown default: return "\(error)"
        }
    }
}

/// The senders' trace contexts of the messages waiting in one mailbox of a traced run, by number.
@usableFromInline
final class TraceSlab: Sendable {
    private let slots = Mutex<(next: UInt32, contexts: [UInt32: InstrumentationContext])>((1, [:]))

    init() {}

    /// Keeps the task's current trace context; its number, or 0 if there is none.
    @usableFromInline
    func putCurrent() -> UInt32 {
        InstrumentationContext.current.map(put) ?? 0
    }

    @usableFromInline
    func put(_ context: InstrumentationContext) -> UInt32 {
        slots.withLock { slots in
            let slot = slots.next
            slots.next = slots.next == .max ? 1 : slots.next + 1
            slots.contexts[slot] = context
            return slot
        }
    }

    @usableFromInline
    func take(_ slot: UInt32) -> InstrumentationContext? {
        slots.withLock { $0.contexts.removeValue(forKey: slot) }
    }
}
