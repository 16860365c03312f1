import FoundationEssentials
public import Instrumentation
import CoreMetrics
import Logging
public import Synchronization

/// One agent child: its mailbox, its in-memory checkpoint and its checkpoint sequence, all of which outlive the
/// incarnations that run it.
///
/// The incarnation's start and loop are `@inlinable` and reached through `starter` and `runner`, closures made where
/// the agent's type is
/// concrete (``Child`` and ``Pool`` are inlinable): the supervisor sees children only as `any ChildRuntime`, and
/// this is what lets each agent type's message loop be specialised rather than run as generic code (measured in
/// `troupe-bench`: several times faster per message).
@usableFromInline
final class AgentCell<A: Agent>: ChildRuntime {
    @usableFromInline let name: String
    @usableFromInline let id: AgentID
    @usableFromInline let agent: A
    @usableFromInline let options: AgentOptions
    @usableFromInline let durability: Durability
    @usableFromInline let mailbox: Mailbox<A.Message>
    @usableFromInline let environment: RunEnvironment
    /// Its type's metrics in this run, when the run records metrics.
    @usableFromInline let metrics: AgentMetrics?
    private let starter: @Sendable (AgentCell, Incarnation) async -> Bool
    private let runner: @Sendable (AgentCell, Incarnation) async -> ExitReason?
    /// A passivated incarnation's state and context, while it holds no task.
    @usableFromInline let parked: Mutex<Parked?> = Mutex(nil)
    /// A claim made ahead of the next incarnation's start (``prepare(_:)``).
    @usableFromInline let prepared: Mutex<Prepared?> = Mutex(nil)

    @usableFromInline
    struct Parked: Sendable {
        @usableFromInline var state: A.State
        @usableFromInline let context: AgentContext<A>

        @usableFromInline init(state: A.State, context: AgentContext<A>) {
            self.state = state
            self.context = context
        }
    }
    /// The ephemeral checkpoint: the state to resume from when nothing is persisted.
    @usableFromInline let memory = Mutex<A.State?>(nil)
    /// The sequence number of the last checkpoint written.
    private let sequence = Atomic<UInt64>(0)
    /// Step results the last claim returned, handed to the incarnation's context.
    @usableFromInline let claimedSteps = Mutex<[String: [UInt8]]>([:])
    /// The fencing token of the latest incarnation's claim (0 before the first), for signals delivered between
    /// incarnations.
    @usableFromInline let currentEpoch = Atomic<UInt64>(0)
    /// Its signals and what it waits for, made at the first use: most agents never wait.
    let waits = Mutex<AgentWaits?>(nil)

    /// The sequence of the last checkpoint written (or claimed).
    @usableFromInline var currentSequence: UInt64 { sequence.load(ordering: .relaxed) }
    /// The cell's flags, in one byte (a cell is allocated per agent, and a hundred thousand idle agents count
    /// every byte): ``Flag/fresh``, ``Flag/revived`` and ``Flag/endedBefore`` are taken by the next start;
    /// ``Flag/endsForGood`` is fixed when the cell is made.
    @usableFromInline let flags: Atomic<UInt8>

    @usableFromInline
    enum Flag {
        /// Set by an operator's fresh restart: the next incarnation starts from the initial state.
        @inlinable static var fresh: UInt8 { 1 }
        /// Set by an operator's restart: the next incarnation runs even if the agent's last record says it ended.
        @inlinable static var revived: UInt8 { 2 }
        /// Set by a claim whose records say the agent ended for good and has not run since.
        @inlinable static var endedBefore: UInt8 { 4 }
        /// A normal return ends the agent for good (its restart type is not `permanent`): the end is then recorded
        /// in the store, so that a resume (or a restart of its supervisor) leaves it ended.
        @inlinable static var endsForGood: UInt8 { 8 }
    }

    /// Clears `flag` and says whether it was set.
    @usableFromInline
    func take(_ flag: UInt8) -> Bool {
        flags.bitwiseAnd(~flag, ordering: .relaxed).oldValue & flag != 0
    }

    @usableFromInline
    func set(_ flag: UInt8) { flags.bitwiseOr(flag, ordering: .relaxed) }

    @usableFromInline
    var endsForGood: Bool { flags.load(ordering: .relaxed) & Flag.endsForGood != 0 }

    @usableFromInline
    func operatorRestartOnce(fresh: Bool) {
        set(fresh ? Flag.fresh | Flag.revived : Flag.revived)
    }

    /// The step key that records an end for good after checkpoint `sequence`: no user step has it (theirs end in
    /// `#n`), and the agent's next commit finishes its unit and so deletes it.
    @usableFromInline
    static func endedKey(after sequence: UInt64) -> String { "c\(sequence)/ended" }

    /// Whether this cell has reported its type's `run` as the handler loop (so that it does so once).
    @usableFromInline let handlerStyleNoted = Atomic<Bool>(false)
    @usableFromInline var handlerStyleSeen: Bool { handlerStyleNoted.load(ordering: .relaxed) }

    @usableFromInline
    func noteHandlerStyle() {
        handlerStyleNoted.store(true, ordering: .relaxed)
        HandlerStyle.seen(A.self)
    }

    @usableFromInline
    init(
        name: String,
        agent: A,
        options: AgentOptions,
        context: ChildFactoryContext,
        endsForGood: Bool,
        starter: @escaping @Sendable (AgentCell, Incarnation) async -> Bool,
        runner: @escaping @Sendable (AgentCell, Incarnation) async -> ExitReason?
    ) throws {
        self.starter = starter
        self.flags = Atomic(endsForGood ? Flag.endsForGood : 0)
        let environment = context.environment
        self.runner = runner
        self.name = name
        self.id = AgentID(run: environment.run, name: name)
        self.agent = agent
        self.options = options
        let durability = options.durability ?? context.durability ?? environment.durability
        self.durability = durability
        var durable: DurableInbox<A.Message>?
        if durability == .durable {
            durable = DurableInbox(
                encode: { message in try AgentCell.encode(message) },
                store: { [environment] payload, trace in
                    try await environment.attached()
                    let sent = SentMessage(to: name, payload: payload, trace: environment.tracing?.encode(trace))
                    let ids = try await environment.store.commit(Commit(run: environment.run, agent: nil, epoch: 0, sent: [sent]))
                    return ids[0]
                }
            )
        }
        let metrics = environment.metrics?.agent(String(describing: A.self))
        self.metrics = metrics
        self.mailbox = Mailbox(name: name, capacity: options.mailboxCapacity, durable: durable, sent: metrics?.sent, traced: environment.tracing != nil)
        self.environment = environment
        try environment.registry.register(mailbox)
    }

    @usableFromInline
    static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        try CompactJSON.encode(value)
    }

    /// The agent's Swift type name, recorded with its claims (computed once: it is a runtime metadata lookup).
    @usableFromInline
    let typeName = String(describing: A.self)
    @usableFromInline
    var supervisor: Supervisor? { nil }
    @usableFromInline
    var mailboxDepth: Int { mailbox.depth }

    @usableFromInline
    var isPassivated: Bool { mailbox.hasParkedConsumer }

    @usableFromInline
    func setAccepting(_ accepting: Bool) { mailbox.setAccepting(accepting) }

    @usableFromInline
    func refuse(because error: TroupeError) { mailbox.refuse(because: error) }

    @usableFromInline
    func requestStop(_ incarnation: Incarnation) {
        incarnation.requestStop()
        mailbox.interrupt()
    }

    @usableFromInline
    func cancel(_ incarnation: Incarnation) {
        incarnation.cancel()
        mailbox.interrupt()  // a passivated incarnation resumes, on a task that is cancelled at once
    }

    /// Resumes a passivated incarnation on a new task. Called by the mailbox's wake hook.
    @usableFromInline
    func resume(_ incarnation: Incarnation) {
        incarnation.activate { [self] in
            if let reason = await run(incarnation) { await incarnation.finish(reason) }
        }
    }

    @usableFromInline
    func remove() async {
        environment.registry.unregister(name)
        for envelope in mailbox.close() {
            await deadLetter(envelope, error: "agent '\(name)' was deleted before handling it", failures: 0)
        }
    }

    // MARK: Running an incarnation

    @usableFromInline
    func run(_ incarnation: Incarnation) async -> ExitReason? {
        await runner(self, incarnation)
    }

    @usableFromInline
    func start(_ incarnation: Incarnation) async -> Bool {
        await starter(self, incarnation)
    }

    /// Claims the agent's checkpoint and runs its `setUp`, on the caller's task (the supervisor's: OTP's
    /// synchronous start), then continues the incarnation on a task of its own.
    @inlinable
    func startIncarnation(_ incarnation: Incarnation) async -> Bool {
        let state: A.State
        do {
            state = try await loadState(incarnation)
        } catch {
            await incarnation.finish(.failed(error))
            return false
        }
        // It ended for good before (in a process that died, or before its supervisor restarted) and nobody
        // restarted it since: it stays ended, without running again.
        if take(Flag.endedBefore) {
            await incarnation.finish(.normal)
            return false
        }
        let work = UnitOfWork<A.Message>(replay: claimedSteps.withLock { $0 })
        // An agent without resources (`Void`, most of them) has one context, from its `setUp` on: there is nothing
        // for `setUp` to read too early.
        let resourceless = A.Resources.self == Void.self
        let setUpContext = AgentContext(
            cell: self, incarnation: incarnation, resources: resourceless ? (() as! A.Resources) : nil, work: work
        )
        let resources: A.Resources
        do {
            resources = try await agent.setUp(context: setUpContext)
        } catch {
            await incarnation.finish(exitReason(for: error, incarnation))
            return false
        }
        let context = resourceless
            ? setUpContext : AgentContext(cell: self, incarnation: incarnation, resources: resources, work: work)
        announce(incarnation, .started)
        // The loop picks the incarnation up where a resumed passivated one would be.
        parked.withLock { $0 = Parked(state: state, context: context) }
        // An agent whose `run` is the engine's handler loop would only find its mailbox empty and passivate: it
        // starts passivated instead, without a task of its own, until a message (or a stop) arrives.
        if HandlerStyle.isKnown(A.self), !incarnation.shouldLeave, mailbox.parkIfIdle(wake: context) {
            return true
        }
        resume(incarnation)
        return true
    }

    @inlinable
    func runIncarnation(_ incarnation: Incarnation) async -> ExitReason? {
        // Started by start(_:), or passivated and woken by a message, a stop request or a cancellation: either
        // way the state and context wait in `parked`.
        guard let resumed = parked.withLock({ parked in parked.take() }) else {
            preconditionFailure("agent '\(name)': incarnation \(incarnation.number) ran without being started")
        }
        var state = resumed.state
        let context = resumed.context
        var reason: ExitReason
        do {
            if let tracing = environment.tracing {
                try await tracing.within { try await agent.run(state: &state, context: context) }
            } else {
                try await agent.run(state: &state, context: context)
            }
            reason = incarnation.isCancelled || Task.isCancelled ? .cancelled : (incarnation.isStopping ? .stopped : .normal)
        } catch is Passivation {
            // The incarnation gave up its task with its state parked in the cell; whichever task resumes it reports
            // its end. The signal travels up this task's own stack: no other task can see or take it.
            return nil
        } catch {
            reason = exitReason(for: error, incarnation)
        }
        // A clean end (returned, or stopped on request) leaves a consistent state: keep it as the final checkpoint.
        switch reason {
        case .normal, .stopped:
            // Durable and checkpointed handler agents committed this state already (ephemeral ones keep it in
            // memory only here, so they always save it).
            let saved = durability.persistsState && context.stateIsSaved.load(ordering: .relaxed)
            do {
                if !saved || context.work.hasOutgoing {
                    try await context.commit(state, announce: durability.persistsState)
                    // A stop that interrupted a durable timer: the commit finished the unit the timer belonged to,
                    // so the deadline moves to the next one, where the loop's first sleep after a resume finds it.
                    if let deadline = context.interruptedTimer.withLock({ $0 }), durability.persistsState {
                        try await context.recordTimer(deadline, key: "c\(currentSequence)/sleep")
                    }
                }
                // Recorded after the final commit, under its sequence: the agent's next commit (after an operator
                // restarts it) deletes the record.
                if case .normal = reason, endsForGood, durability.persistsState { try await recordEnd(incarnation) }
            } catch {
                context.abandonUncommitted()
                reason = .failed(error)
            }
        case .cancelled, .failed:
            // What a durable incarnation took or sent since its last commit never happened.
            if durability == .durable { context.abandonUncommitted() }
        }
        await agent.tearDown(context.resources, reason: reason, context: context)
        return reason
    }

    /// Records that the agent ended for good after its last checkpoint (see ``endsForGood``).
    @usableFromInline
    func recordEnd(_ incarnation: Incarnation) async throws {
        try await environment.store.recordStep(
            id,
            epoch: incarnation.epoch.load(ordering: .relaxed),
            key: Self.endedKey(after: currentSequence),
            result: []
        )
    }

    @usableFromInline
    func announce(_ incarnation: Incarnation, _ kind: Event.Kind) {
        environment.events.emit(name, incarnation: incarnation.number, kind)
    }

    @usableFromInline
    func exitReason(for error: any Error, _ incarnation: Incarnation) -> ExitReason {
        if error is CancellationError {
            if incarnation.isCancelled || Task.isCancelled { return .cancelled }
            if incarnation.isStopping { return .stopped }
        }
        return .failed(error)
    }

    @inlinable
    func loadState(_ incarnation: Incarnation) async throws -> A.State {
        // An ephemeral agent's state is in memory: inlined (and specialised) into the start, with no store call.
        guard durability.persistsState else {
            let fresh = take(Flag.fresh)
            if fresh || options.restartFrom != .lastCheckpoint { return agent.initialState() }
            return memory.withLock { $0 } ?? agent.initialState()
        }
        let (state, epoch): (A.State, UInt64)
        if let early = prepared.withLock({ $0.take() }), early.incarnation == incarnation.number {
            (state, epoch) = try early.result.get()
        } else {
            (state, epoch) = try await claimedState(incarnation.number)
        }
        incarnation.epoch.store(epoch, ordering: .relaxed)
        currentEpoch.store(epoch, ordering: .relaxed)
        return state
    }

    /// A claim made ahead of an incarnation's start by ``prepare(_:)``.
    @usableFromInline
    struct Prepared: Sendable {
        @usableFromInline let incarnation: UInt64
        @usableFromInline let result: Result<(state: A.State, epoch: UInt64), any Error>
    }

    /// Takes the claim the supervisor made ahead of incarnation `number`'s start, with its siblings'. Persisting
    /// agents only.
    @usableFromInline
    func prepare(_ number: UInt64, claimed: Result<Claim, any Error>) async {
        guard durability.persistsState else { return }
        let fresh = take(Flag.fresh)
        let result: Result<(state: A.State, epoch: UInt64), any Error>
        do {
            result = .success(try await adopt(try claimed.get(), fresh: fresh))
        } catch {
            result = .failure(error)
        }
        prepared.withLock { $0 = Prepared(incarnation: number, result: result) }
    }

    /// Forgets a claim made ahead that no start used (the child was not started after all).
    @usableFromInline
    func discardPrepared() {
        _ = prepared.withLock { $0.take() }
    }

    @usableFromInline
    var claimsAhead: Bool { durability.persistsState }

    @usableFromInline
    func claimRequest(_ number: UInt64) -> ClaimRequest? {
        guard durability.persistsState else { return nil }
        return ClaimRequest(agent: id, type: typeName, durability: durability, incarnation: number)
    }

    /// Claims the state of a persisting agent's incarnation `number` from the store.
    @usableFromInline
    func claimedState(_ number: UInt64) async throws -> (state: A.State, epoch: UInt64) {
        let fresh = take(Flag.fresh)
        try await environment.attached()
        let claim = try await environment.store.claim(
            id,
            type: typeName,
            durability: durability,
            incarnation: number
        )
        return try await adopt(claim, fresh: fresh)
    }

    /// Takes what a claim returned: the sequence to continue from, the recorded steps, the durable messages to put
    /// back, and the state to start from.
    private func adopt(_ claim: Claim, fresh: Bool) async throws -> (state: A.State, epoch: UInt64) {
        let epoch = claim.epoch
        let sequence = claim.latest?.sequence ?? 0
        self.sequence.store(sequence, ordering: .relaxed)
        claimedSteps.withLock { $0 = claim.steps }
        let revived = take(Flag.revived)
        if endsForGood && !revived && !fresh && claim.steps[Self.endedKey(after: sequence)] != nil {
            set(Flag.endedBefore)
        } else {
            _ = take(Flag.endedBefore)
        }
        if claim.steps.keys.contains(where: { $0.hasPrefix("s") }) { waitsBox().load(claimedSignals(claim.steps)) }
        if !claim.pending.isEmpty { await restore(claim.pending) }
        guard let latest = claim.latest, options.restartFrom == .lastCheckpoint, !fresh else {
            return (agent.initialState(), epoch)
        }
        return (try decode(latest), epoch)
    }

    /// Puts durable messages accepted by an earlier process back in the mailbox, ahead of newer ones.
    private func restore(_ pending: [StoredMessage]) async {
        var envelopes: [Envelope<A.Message>] = []
        envelopes.reserveCapacity(pending.count)
        for stored in pending {
            do {
                let message = try decodeMessage(stored)
                envelopes.append(mailbox.envelope(message, id: stored.id, trace: environment.tracing?.decode(stored.trace)))
            } catch {
                await deadLetter(stored.payload, id: stored.id, error: "\(error)", failures: 0)
            }
        }
        mailbox.requeueFront(envelopes)
    }

    /// A stored message as the agent's message type, through its message migration if it no longer decodes.
    private func decodeMessage(_ stored: StoredMessage) throws -> A.Message {
        let error: any Error
        do {
            return try JSONDecoder().decode(A.Message.self, from: Data(stored.payload))
        } catch let decoding {
            error = decoding
        }
        let problem: String
        do {
            if let migrated = try A.migrate(message: StoredValue(stored.payload)) { return migrated }
            problem = "\(error); \(A.self).migrate(message:) has no path for it"
        } catch let migration {
            problem = "\(error); \(A.self).migrate(message:) failed: \(migration)"
        }
        throw TroupeError(
            .corruptCheckpoint,
            "message #\(stored.id) to '\(name)' does not decode as \(A.Message.self) (\(problem)); the agent's "
                + "message type changed since it was sent. Kept as a dead letter: teach migrate(message:) the old "
                + "shape and requeue it (`troupe dead-letters RUN --requeue`)."
        )
    }

    private func decode(_ checkpoint: Checkpoint) throws -> A.State {
        guard checkpoint.stateVersion == A.stateVersion else { return try migrate(checkpoint) }
        do {
            return try JSONDecoder().decode(A.State.self, from: Data(checkpoint.state))
        } catch {
            throw TroupeError(
                .quarantined,
                "agent '\(name)' is quarantined: its checkpoint #\(checkpoint.sequence) does not decode as "
                    + "\(A.State.self) (\(error)). The checkpoint is kept; check that the State type still matches "
                    + "what was saved, or restart the agent from its initial state.",
                underlying: error
            )
        }
    }

    /// A checkpoint of another state version, through the agent's migration; quarantined where there is no path.
    private func migrate(_ checkpoint: Checkpoint) throws -> A.State {
        let version = checkpoint.stateVersion
        let found = "agent '\(name)' is quarantined: its checkpoint #\(checkpoint.sequence) has state version \(version), "
            + "but \(A.self) reads version \(A.stateVersion)"
        guard version < A.stateVersion else {
            throw TroupeError(
                .quarantined,
                found + ", an older one: the checkpoint was written by a newer build. It is kept; deploy that build, "
                    + "or restart the agent from its initial state."
            )
        }
        let migrated: A.State?
        do {
            migrated = try A.migrate(StoredValue(checkpoint.state), from: version)
        } catch {
            throw TroupeError(
                .quarantined,
                found + ", and \(A.self).migrate(_:from: \(version)) failed: \(error). The checkpoint is kept; fix the "
                    + "migration and resume, or restart the agent from its initial state.",
                underlying: error
            )
        }
        guard let migrated else {
            throw TroupeError(
                .quarantined,
                found + ", and \(A.self).migrate(_:from:) has no path from version \(version). The checkpoint is kept; "
                    + "add that migration and resume, or restart the agent from its initial state."
            )
        }
        return migrated
    }

    /// Saves `state` as the point to resume from, with the durable messages handled and the messages sent since
    /// the last commit; then delivers those messages.
    @usableFromInline
    func commit(
        _ state: A.State,
        _ incarnation: Incarnation,
        consumed: [Int64],
        outbox: [Outgoing],
        signals: [String] = [],
        announce: Bool
    ) async throws {
        guard durability.persistsState else {
            memory.withLock { $0 = state }
            if announce {
                let next = sequence.add(1, ordering: .relaxed).newValue
                environment.events.emit(name, incarnation: incarnation.number, .checkpointed(sequence: next))
            }
            return
        }
        let encoded = try CompactJSON.encode(state)
        // The sequence advances only once the store has accepted the commit: a failed commit leaves the unit of work
        // (and the scope its recorded steps are filed under) as it was, so its retry replays them.
        let next = sequence.load(ordering: .relaxed) + 1
        var stored: [SentMessage] = []
        for message in outbox {
            guard let payload = message.payload else { continue }
            stored.append(SentMessage(to: message.recipient, payload: payload, trace: environment.tracing?.encode(message.trace)))
        }
        let ids = try await environment.store.commit(
            Commit(
                run: id.run,
                agent: id,
                epoch: incarnation.epoch.load(ordering: .relaxed),
                checkpoint: Checkpoint(
                    agent: id,
                    epoch: incarnation.epoch.load(ordering: .relaxed),
                    sequence: next,
                    stateVersion: A.stateVersion,
                    state: encoded
                ),
                consumed: consumed,
                sent: stored,
                sync: options.syncCommits,
                finishedSteps: Commit.finishedScopes(consumed: consumed, sequence: next - 1, signals: signals)
            )
        )
        sequence.store(next, ordering: .relaxed)
        if announce { environment.events.emit(name, incarnation: incarnation.number, .checkpointed(sequence: next)) }
        var storedIndex = 0
        for message in outbox {
            if message.payload != nil {
                await message.deliver(ids[storedIndex])
                storedIndex += 1
            } else {
                await message.deliver(0)
            }
        }
    }

    /// Puts a crashed batch back: the failing message first (unless it has failed too often), then the rest.
    @usableFromInline
    func requeueAfterCrash(
        _ batch: [Envelope<A.Message>],
        failedAt index: Int,
        error: any Error,
        countsAsFailure: Bool,
        lastGood state: A.State
    ) async {
        var failed = batch[index]
        let rest = batch[(index + 1)...]
        if !durability.persistsState { memory.withLock { $0 = state } }
        guard countsAsFailure else {
            mailbox.requeueFront([failed] + rest)
            return
        }
        failed.failures += 1
        if Int(failed.failures) >= options.maxDeliveryFailures {
            mailbox.requeueFront(rest)
            await deadLetter(failed, error: "\(error)", failures: Int(failed.failures))
        } else {
            mailbox.requeueFront([failed] + rest)
        }
    }

    @usableFromInline
    func deadLetter(_ envelope: Envelope<A.Message>, error: String, failures: Int) async {
        let encoded = (try? JSONEncoder().encode(envelope.message)).map(Array.init) ?? []
        await deadLetter(encoded, id: envelope.id, error: error, failures: failures)
    }

    private func deadLetter(_ encoded: [UInt8], id messageID: Int64, error: String, failures: Int) async {
        do {
            try await environment.store.deadLetter(
                DeadLetter(
                    agent: id,
                    message: encoded,
                    error: error,
                    failures: failures,
                    messageID: messageID == 0 ? nil : messageID
                )
            )
        } catch {
            environment.logger.error(
                "could not record a dead letter for '\(name)': \(error)",
                metadata: ["troupe.agent.name": .string(name)]
            )
        }
        metrics?.deadLetters.increment()
        environment.events.emit(name, incarnation: 0, .deadLettered(error: error, failures: failures))
    }
}

/// The agent types whose `run` is known to be the engine's passivating handler loop (the default `run`): it has
/// been seen running. A type's witness for `run` is the same for every value of the type, so one sighting holds for
/// all its agents, which can then start passivated (see ``AgentCell/startIncarnation(_:)``).
@usableFromInline
enum HandlerStyle {
    private static let types = Mutex<Set<ObjectIdentifier>>([])
    /// Whether any type has been seen, read without the lock.
    private static let any = Atomic<Bool>(false)

    @usableFromInline
    static func isKnown(_ type: Any.Type) -> Bool {
        guard any.load(ordering: .acquiring) else { return false }
        return types.withLock { $0.contains(ObjectIdentifier(type)) }
    }

    @usableFromInline
    static func seen(_ type: Any.Type) {
        types.withLock { _ = $0.insert(ObjectIdentifier(type)) }
        any.store(true, ordering: .releasing)
    }
}

/// Thrown by the passivating handler loop when the incarnation parks instead of ending: the agent's `run` returns
/// through it, and the cell returns "passivated" to its caller on the same task.
@usableFromInline
struct Passivation: Error {
    @usableFromInline init() {}
}

/// A message sent by a durable agent, held until the agent commits.
@usableFromInline
struct Outgoing: Sendable {
    /// The recipient's name (a pool member's, once routed).
    @usableFromInline let recipient: String
    /// The encoded message, for a durable recipient; `nil` for one that keeps its messages in memory.
    @usableFromInline let payload: [UInt8]?
    /// The sender's trace context, when the run traces: stored with a durable message.
    @usableFromInline let trace: InstrumentationContext?
    /// Puts the message in the recipient's mailbox, with the identifier the store gave it.
    @usableFromInline let deliver: @Sendable (Int64) async -> Void

    @usableFromInline
    init(recipient: String, payload: [UInt8]?, trace: InstrumentationContext?, deliver: @escaping @Sendable (Int64) async -> Void) {
        self.recipient = recipient
        self.payload = payload
        self.trace = trace
        self.deliver = deliver
    }
}
