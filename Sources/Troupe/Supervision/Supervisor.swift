import DequeModule
public import ServiceLifecycle
import Synchronization

/// Runs children — agents, pools and nested supervisors — and restarts them when they exit, as an OTP supervisor
/// does; a restarted agent resumes from its last checkpoint.
///
/// A supervisor is built from a ``Blueprint``, usually as the root of a ``Run``. ``run()`` starts the children in
/// order and supervises them until graceful shutdown, cancellation or escalation, then stops them in reverse start
/// order, each through its shutdown ladder (see ``ChildSpec/Shutdown``).
///
/// Every child's lifecycle lives in a pure state machine; the actor only carries out what it decides. Everything
/// that changes the supervisor — a child's exit, a restart timer, each operator call (``startChild(_:)``,
/// ``terminateChild(_:)``, ``restartChild(_:)``, ``deleteChild(_:)``), the shutdown — is an event in one ordered
/// queue, handled to the end before the next: an agent never has two live incarnations, and a call that conflicts
/// with a restart in progress is refused with ``TroupeError/Code/childRestarting``. Children start one after the
/// other, each `setUp` inside the supervisor's loop (isolated to the supervisor), as OTP's synchronous start. The
/// loop runs on the supervisor's task, or, when a child's exit finds it idle, on the task that ran the child: a
/// crash-looping child is restarted without waking another thread.
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
    /// Every child's lifecycle, the start queue and the intensity window. Only the supervise loop changes it.
    private var machine: StateMachine
    /// Each child's runtime (mailbox, checkpoint) and live incarnation, by name.
    private var entries: [String: Entry] = [:] {
        didSet { claimers = nil }  // no `oldValue`: the dictionary is still changed in place (SE-0268)
    }
    /// Whether any child claims its state from the store at its start (``claimAhead()`` has work); worked out
    /// again after the children change.
    private var claimers: Bool?
    private var isRunning = false
    /// The current run's control stream, reachable without the actor so that exits, operator requests and stop
    /// requests never wait for it, and whether a shutdown was requested before the run started.
    private nonisolated let inbox = Mutex<(stream: AsyncStream<Control>.Continuation?, shutdownPending: Bool)>(
        (nil, false)
    )
    /// Operator requests waiting for a child's start (OTP's `start_child` returns once `init` has).
    private var startReplies: [String: [CheckedContinuation<Void, any Error>]] = [:]
    /// The pending start timer: its token and its deadline.
    private var timer: (token: UInt64, at: Duration, task: Task<Void, Never>)?
    private var timerTokens: UInt64 = 0
    /// Fulfilled (with `true`) once every child has started, for a parent waiting to start its next child.
    private var startedSignal: OneShot<Bool>?
    /// Whether the supervisor is still starting its children; a shutdown requested meanwhile waits for the end of
    /// the start (OTP's supervisor handles no request before its `init` has started every child).
    private var startingUp = false
    private var shutdownDeferred = false
    /// Events waiting for the loop, in arrival order (see ``supervise(_:)``).
    private var pending: Deque<Control> = []
    /// Whether a task is handling events; others only queue theirs.
    private var handling = false
    /// Whether the loop takes events: from the start of a run until its outcome.
    private var looping = false
    /// Why the loop ended, once it has.
    private var outcome: Outcome?

    /// Reports its children's exits to one run of the supervisor (the run's control stream): made when the run
    /// begins and shared by every incarnation it starts.
    private final class ExitListener: ExitReporter {
        weak let supervisor: Supervisor?
        let environment: RunEnvironment
        let control: AsyncStream<Control>.Continuation

        init(supervisor: Supervisor, environment: RunEnvironment, control: AsyncStream<Control>.Continuation) {
            self.supervisor = supervisor
            self.environment = environment
            self.control = control
        }

        func report(_ name: String, incarnation number: UInt64, _ reason: ExitReason) async {
            environment.events.emit(name, incarnation: number, .exited(reason))
            environment.metrics?.exited(reason)
            let exited = Control.exited(name, incarnation: number, reason)
            // A cancelled task must not carry out the supervisor's decisions (its sleeps and waits would end at
            // once): it leaves the exit to the supervisor's own task.
            if let supervisor, !Task.isCancelled {
                await supervisor.deliver(exited)
            } else {
                control.yield(exited)
            }
        }
    }

    /// The entries again, by the state machine's slots (``StateMachine/slot(of:)``), so that a start finds its child
    /// without hashing the name. Kept in step with `entries` by ``add(_:)`` and ``remove(_:)`` alone.
    private var entriesBySlot: [Entry?]

    /// The entry of the child the state machine launched last, `name`.
    private func launchedEntry(_ name: String) -> Entry? {
        guard let slot = machine.launchedSlot, let entry = entriesBySlot[slot] else { return entries[name] }
        assert(entry.spec.name == name, "slot \(slot) holds '\(entry.spec.name)', not the launched '\(name)'")
        return entry
    }

    /// Records a child's entry, by name and by slot.
    private func add(_ entry: Entry) {
        entries[entry.spec.name] = entry
        if entry.slot == entriesBySlot.count { entriesBySlot.append(entry) } else { entriesBySlot[entry.slot] = entry }
    }

    /// Forgets a child that is gone for good (by name and by slot) and removes its runtime: its name is free, and
    /// its undelivered messages become dead letters.
    private func remove(_ name: String) async {
        guard let entry = entries.removeValue(forKey: name) else { return }
        if entriesBySlot[entry.slot] === entry { entriesBySlot[entry.slot] = nil }
        await entry.runtime.remove()
    }

    /// The current run's ``ExitListener`` (`nil` while the supervisor does not run).
    private var exitListener: ExitListener?

    /// A child's spec, runtime and live incarnation. A class: reading the runtime or setting the incarnation at each
    /// start neither copies the spec nor writes to `entries` (only adding and removing children do).
    private final class Entry {
        let spec: ChildSpec
        let runtime: any ChildRuntime
        /// The child's slot in the state machine.
        let slot: Int
        var incarnation: Incarnation?
        /// Whether the child's mailbox takes messages, as this supervisor last set it (a new mailbox does): a start
        /// turns it on only when it is off, without a call into the child's generic code.
        var accepting = true

        init(spec: ChildSpec, runtime: any ChildRuntime, slot: Int) {
            self.spec = spec
            self.runtime = runtime
            self.slot = slot
        }

        /// Turns senders away while the child is stopped.
        func turnAway() {
            runtime.setAccepting(false)
            accepting = false
        }
    }

    /// Everything that changes a supervisor, consumed one at a time by its supervise loop.
    enum Control: Sendable {
        case exited(String, incarnation: UInt64, ExitReason)
        case timer(UInt64)
        case request(Request, CheckedContinuation<Void, any Error>)
        case shutdown
        case cancel
        /// Nothing to handle: wakes the supervisor's task when the loop ended on another task.
        case wake
    }

    /// An operator's request, answered through its continuation once the loop has carried it out.
    enum Request: Sendable {
        case start(ChildSpec)
        case terminate(String)
        case restart(String, fresh: Bool)
        case delete(String)
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
        machine.reserveCapacity(children.count)
        var entries: [String: Entry] = [:]
        entries.reserveCapacity(children.count)
        var bySlot: [Entry?] = []
        bySlot.reserveCapacity(children.count)
        var claims = false
        for spec in children {
            guard entries[spec.name] == nil else {
                throw TroupeError(
                    .duplicateName,
                    "supervisor '\(name)' has two children named '\(spec.name)'. Give each child its own name."
                )
            }
            let runtime = try spec.make(context)
            let entry = Entry(spec: spec, runtime: runtime, slot: machine.add(spec.name, restart: spec.restart))
            precondition(entry.slot == bySlot.count, "a new supervisor's children take slots in order")
            entries[spec.name] = entry
            bySlot.append(entry)
            claims = claims || runtime.claimsAhead
        }
        self.machine = machine
        self.entries = entries
        self.entriesBySlot = bySlot
        self.claimers = claims
    }

    // MARK: Running

    /// Starts the children in order and supervises them until shutdown.
    ///
    /// Children start one after the other: a child's ``Agent/setUp(context:)`` begins only after the previous
    /// child's returned. Returns after a graceful shutdown (``requestShutdown()``, or swift-service-lifecycle's
    /// graceful shutdown) or cancellation, once every child has been stopped in reverse start order.
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

    func run(incarnation: Incarnation?, started: OneShot<Bool>? = nil) async throws {
        precondition(!isRunning, "supervisor '\(name)' is already running; a supervisor runs once at a time")
        isRunning = true
        defer { isRunning = false }
        startedSignal = started
        let (stream, continuation) = AsyncStream<Control>.makeStream()
        let shutdownPending = inbox.withLock { inbox in
            inbox.stream = continuation
            defer { inbox.shutdownPending = false }
            return inbox.shutdownPending
        }
        if shutdownPending || incarnation?.isStopping == true { continuation.yield(.shutdown) }
        exitListener = ExitListener(supervisor: self, environment: environment, control: continuation)

        machine.begin(at: environment.clock.now)
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

        // From here on, requests are refused at once, and those still queued are answered.
        inbox.withLock { $0.stream = nil }
        exitListener = nil
        continuation.finish()
        timer?.task.cancel()
        timer = nil
        looping = false
        for control in pending {
            if case .request(_, let reply) = control { reply.resume(throwing: notRunningError()) }
        }
        pending.removeAll()
        for await control in stream {
            if case .request(_, let reply) = control { reply.resume(throwing: notRunningError()) }
        }
        // The stop ladder must be able to wait out its deadlines even when this task is cancelled (a cancelled
        // task's sleeps end at once), so it runs in a task of its own, which cancellation does not reach. Awaiting
        // its value keeps it structured in practice: run() does not return before it has finished.
        let graceful: Bool
        if case .cancelled = outcome { graceful = false } else { graceful = true }
        await Task { await self.stopAll(graceful: graceful) }.value
        for (name, replies) in startReplies {
            for reply in replies { reply.resume(throwing: notRunningError(child: name)) }
        }
        startReplies = [:]
        startedSignal?.fulfill(false)
        startedSignal = nil

        if case .escalated(let error) = outcome { throw error }
    }

    /// The one loop that changes the supervisor: each event is handled to the end before the next is taken.
    ///
    /// Events reach it two ways, into one queue (``pending``): operator requests, timers, shutdown and cancellation
    /// through the control stream, which this task reads; and children's exits straight from the task that ran the
    /// incarnation (``deliver(_:)``). Whoever finds the queue idle handles it until it is empty: a crash-looping
    /// child's exit is handled (and its successor started) on the crashed task itself, without waking this one.
    /// Either way one event is handled at a time, to its end, in arrival order.
    private func supervise(_ stream: AsyncStream<Control>) async -> Outcome {
        startingUp = true
        shutdownDeferred = false
        pending.removeAll()
        outcome = nil
        looping = true
        handling = true
        await startNext()
        handling = false
        await drain()
        if let outcome { return outcome }
        for await control in stream {
            if case .wake = control {} else { pending.append(control) }
            if !handling { await drain() }
            if let outcome { return outcome }
        }
        return .cancelled
    }

    /// Hands a child's exit to the loop from the task that ran the child. If nobody is handling events, this task
    /// handles them now; if the loop is over, the exit is of no more interest (``stopAll(graceful:)`` waits for
    /// exits itself).
    fileprivate func deliver(_ control: Control) async {
        guard looping else { return }
        pending.append(control)
        guard !handling else { return }
        await drain()
        // The loop ended on this task: the supervisor's own task, waiting on the stream, stops the children.
        if outcome != nil { _ = inbox.withLock { $0.stream?.yield(.wake) } }
    }

    /// Handles the queued events, one at a time and each to its end, until none is left or the loop ends.
    private func drain() async {
        handling = true
        defer { handling = false }
        while outcome == nil, let control = pending.popFirst() {
            if let ended = await handle(control) {
                end(ended)
                return
            }
            await startNext()
            if shutdownDeferred, !startingUp {
                end(.shutdown)
                return
            }
        }
    }

    private func end(_ ended: Outcome) {
        outcome = ended
        looping = false
    }

    /// Handles one event; returns an outcome if the loop must end.
    private func handle(_ control: Control) async -> Outcome? {
        switch control {
        case .exited(let child, let number, let reason):
            let wasStarting = !startReplies.isEmpty && machine.phase(of: child) == .starting(number)
            if let error = await childExited(child, incarnation: number, reason: reason) {
                return .escalated(error)
            }
            if wasStarting { answerStart(of: child, failure: reason) }
        case .timer(let token):
            if timer?.token == token { timer = nil }
        case .request(let request, let reply):
            await handle(request, reply: reply)
        case .shutdown:
            if !startingUp { return .shutdown }
            shutdownDeferred = true
        case .cancel:
            return .cancelled
        case .wake:
            break
        }
        return nil
    }

    /// Starts the queued children that are due, one after the other, or sets a timer for the earliest one that
    /// is not.
    ///
    /// The children that claim their state from the store have it claimed ahead, a batch at a time, in one store
    /// call per batch (a start or resume of thousands of durable agents is a few set-based transactions, not a
    /// transaction, a task and a wake-up each). The next batch is claimed while the current one starts, so the
    /// store's work and the starts overlap; the starts themselves still run one after the other.
    private func startNext() async {
        await withTaskGroup(of: Result<[Claim], any Error>.self) { group in
            var ahead = claimsAhead()
            defer { ahead?.discard() }
            if ahead != nil { claimNextBatch(&ahead!, in: &group) }
            while true {
                switch machine.nextStart(at: environment.clock.now) {
                case .launch(let name, let number):
                    if ahead != nil {
                        if !ahead!.launching(name, number) {
                            // The starts left the order claimed ahead: the rest claim at their own starts.
                            ahead!.discard()
                            ahead = nil
                        } else if ahead!.awaitsBatch {
                            let claims = await group.next()
                            await ahead!.prepare(claims)
                            claimNextBatch(&ahead!, in: &group)
                        }
                    }
                    await launch(name, incarnation: number)
                case .wake(let deadline):
                    setTimer(deadline)
                    return
                case .none:
                    if startingUp, machine.hasStarted {
                        startingUp = false
                        startedSignal?.fulfill(true)
                    }
                    return
                }
            }
        }
    }

    /// Claims made ahead of the due starts, or `nil` when there is nothing to batch.
    private func claimsAhead() -> AheadClaims? {
        guard machine.queue.count > 1 else { return nil }  // the common case: a lone restart, nothing to batch
        if claimers == nil { claimers = entries.values.contains { $0.runtime.claimsAhead } }
        guard claimers == true else { return nil }  // a tree of ephemeral agents claims nothing
        // Claim only for starts that follow now: while a start is under way or the next one waits out a backoff,
        // the loop launches nothing, and what it claimed ahead would be wasted (and bump epochs for nothing).
        guard machine.canLaunch(at: environment.clock.now) else { return nil }
        return AheadClaims()
    }

    /// Starts claiming, in a child task of `group`, the batch of due children after those `ahead` has seen.
    private func claimNextBatch(_ ahead: inout AheadClaims, in group: inout TaskGroup<Result<[Claim], any Error>>) {
        var batch: [AheadClaims.Child] = []
        var requests: [ClaimRequest] = []
        // The queue holds the due children not launched yet, in start order: skip those already claimed.
        for (name, number) in machine.dueToStart(at: environment.clock.now, skipping: ahead.unlaunched) {
            guard let runtime = entries[name]?.runtime else { break }
            let request = runtime.claimRequest(number)
            batch.append(.init(name: name, incarnation: number, runtime: runtime, request: request))
            if let request {
                requests.append(request)
                if requests.count == AheadClaims.batch { break }
            }
        }
        ahead.add(batch, claiming: !requests.isEmpty)
        guard !requests.isEmpty else { return }
        let store = environment.store
        let environment = self.environment
        group.addTask {
            do {
                try await environment.attached()
                let claims = try await store.claim(requests)
                guard claims.count == requests.count else {
                    throw TroupeError(
                        .storage,
                        "the store returned \(claims.count) claims for \(requests.count) agents; a store's claim(_:) "
                            + "must return one claim per request, in order."
                    )
                }
                return .success(claims)
            } catch {
                return .failure(error)
            }
        }
    }

    private func setTimer(_ deadline: Duration) {
        if let timer, timer.at == deadline { return }
        timer?.task.cancel()
        guard let control = inbox.withLock({ $0.stream }) else { return }
        timerTokens += 1
        let token = timerTokens
        let clock = environment.clock
        // Unstructured on purpose: the loop must keep taking events while a restart waits out its backoff. The task
        // only posts an event; it is cancelled when replaced and when the supervisor stops.
        let task = Task {
            try? await clock.sleep(for: deadline - clock.now)
            control.yield(.timer(token))
        }
        timer = (token, deadline, task)
    }

    private func stopAll(graceful: Bool) async {
        for (name, number) in machine.beginStopping() {
            if let incarnation = entries[name]?.incarnation, incarnation.number == number {
                await stop(name, incarnation, graceful: graceful)
            }
            machine.stopFinished(name, incarnation: number, then: .keep)
        }
        for name in machine.order { entries[name]?.turnAway() }
    }

    // MARK: Incarnations

    /// Starts incarnation `number` of `name` and waits until it has started (its `setUp` returned) or ended.
    private func launch(_ name: String, incarnation number: UInt64) async {
        guard let entry = launchedEntry(name), let reporter = exitListener else { return }
        let runtime = entry.runtime
        let incarnation = Incarnation(number: number, name: name, reporter: reporter)
        if !entry.accepting {
            runtime.setAccepting(true)
            entry.accepting = true
        }
        entry.incarnation = incarnation
        // The start runs here, in the loop, so the next child's start waits for it (OTP's synchronous start). After
        // it the incarnation runs on a task of its own, unstructured on purpose: a child that ignores cancellation
        // must not hold its supervisor hostage; it is abandoned (and reported) after its deadlines, which a
        // task-group child could not be. Its exit is reported through the control stream, so nothing is lost. An
        // incarnation that ended during its start is reported the same way, and handled as the next event.
        guard await runtime.start(incarnation) else { return }
        machine.childBegan(name, incarnation: number)
        answerStart(of: name, failure: nil)
    }

    /// Acts on a child's exit. Returns an error if the supervisor must escalate.
    private func childExited(_ name: String, incarnation number: UInt64, reason: ExitReason) async -> TroupeError? {
        guard let runtime = entries[name]?.runtime else { return nil }
        var quarantine: TroupeError?
        if case .failed(let error) = reason, let troupeError = error as? TroupeError, troupeError.code == .quarantined {
            quarantine = troupeError
        }
        let now = environment.clock.now
        // Draw only when the backoff uses chance: the system generator costs a system call.
        let random = machine.backoff.jitter > 0 ? environment.random.next() : 0.5
        let action = machine.childExited(
            name,
            incarnation: number,
            reason: reason,
            quarantined: quarantine != nil,
            at: now,
            random: random
        )
        if action != .ignore, entries[name]?.incarnation?.number == number { entries[name]?.incarnation = nil }
        switch action {
        case .ignore:
            return nil
        case .keep:
            entries[name]?.turnAway()
            return nil
        case .quarantine:
            // Restarting cannot help: the same checkpoint would fail again. Keep the agent (and its messages) until
            // an operator restarts it from a state it can read; refuse new messages, saying why.
            let error = quarantine ?? TroupeError(.quarantined, "agent '\(name)' is quarantined")
            runtime.refuse(because: error)
            entries[name]?.accepting = false
            environment.events.emit(name, incarnation: number, .quarantined(error: error.message))
            return nil
        case .remove(let removed):
            await remove(removed)
            return nil
        case .restartGroup(let stops, let removals, let restarted, let delay):
            for (sibling, siblingNumber) in stops {
                if let incarnation = entries[sibling]?.incarnation, incarnation.number == siblingNumber {
                    await stop(sibling, incarnation, graceful: true)
                }
                machine.groupMemberStopped(sibling, incarnation: siblingNumber)
            }
            for removed in removals { await remove(removed) }
            machine.groupStopsFinished()
            environment.metrics?.restarted(restarted.count, reason: reason.metricName)
            for child in restarted {
                guard let state = machine.child(child) else { continue }
                environment.events.emit(
                    child,
                    incarnation: state.incarnations + 1,
                    .restarting(after: delay, restarts: state.restarts)
                )
            }
            return nil
        case .escalate:
            let period = machine.intensity.period
            let restarts = machine.restartsInWindow(at: now)
            environment.metrics?.escalated()
            environment.events.emit(self.name, incarnation: 0, .escalated(restarts: restarts, within: period))
            return TroupeError(
                .escalated,
                "supervisor '\(self.name)' gave up: child '\(name)' exited (\(reason)) and the restarts reached "
                    + "\(restarts) within \(period), more than its intensity allows (\(machine.intensity)). "
                    + "See the children's 'exited' events for the cause."
            )
        }
    }

    /// Stops an incarnation through the shutdown ladder: graceful (unless `graceful` is false or the child's
    /// graceful deadline is zero), then cancellation, then abandon. Emits `stopped` if it ended within its graceful
    /// deadline, `killed` if it took cancellation, `abandoned` if it outlived both deadlines.
    private func stop(_ name: String, _ incarnation: Incarnation, graceful: Bool) async {
        guard let entry = entries[name] else { return }
        let shutdown = entry.spec.shutdown
        let clock = environment.clock
        var reason: ExitReason?
        let hurry = environment.hurry
        let askedToStop = graceful && shutdown.graceful != .zero && hurry.value == nil
        if askedToStop {
            entry.runtime.requestStop(incarnation)
            // A hurried run (grace over, lease lost) cuts the graceful wait short.
            reason = await withDeadline(shutdown.graceful, clock: clock) {
                await withTaskGroup(of: ExitReason?.self) { group in
                    group.addTask { await incarnation.exit.wait() }
                    group.addTask {
                        _ = await hurry.wait()
                        return nil
                    }
                    let first = await group.next() ?? nil
                    group.cancelAll()
                    return first
                }
            }
        }
        // An incarnation that ended without being cancelled stopped gracefully, even when the deadline's timer
        // won the race against its exit (a loaded machine runs both late, and the group takes whichever it sees
        // first): it is not reported `killed`, which it was not.
        if askedToStop, reason == nil { reason = incarnation.exit.value }
        let kind: Event.Kind
        if reason != nil {
            kind = .stopped
        } else {
            entry.runtime.cancel(incarnation)
            reason = await withDeadline(shutdown.cancellation, clock: clock) { await incarnation.exit.wait() }
            kind = reason == nil ? .abandoned : .killed
        }
        environment.events.emit(name, incarnation: incarnation.number, kind)
        if entries[name]?.incarnation === incarnation { entries[name]?.incarnation = nil }
    }

    // MARK: Operator requests

    private func notRunningError(child: String? = nil) -> TroupeError {
        TroupeError(
            .notRunning,
            "supervisor '\(name)' is not running\(child.map { " (child '\($0)' was not started)" } ?? ""). Start "
                + "the run first; children can be changed only while their supervisor runs."
        )
    }

    /// Hands a request to the supervise loop and waits for its answer.
    private func submit(_ request: Request) async throws {
        try await withCheckedThrowingContinuation { (reply: CheckedContinuation<Void, any Error>) in
            let accepted = inbox.withLock { inbox -> Bool in
                guard let stream = inbox.stream else { return false }
                if case .enqueued = stream.yield(.request(request, reply)) { return true }
                return false
            }
            if !accepted { reply.resume(throwing: notRunningError()) }
        }
    }

    private func refusal(_ refusal: StateMachine.Refusal, child: String) -> TroupeError {
        switch refusal {
        case .unknown:
            let known = machine.order.joined(separator: ", ")
            return TroupeError(
                .unknownChild,
                "supervisor '\(name)' has no child named '\(child)'. Its children are: \(known.isEmpty ? "none" : known)."
            )
        case .duplicate:
            return TroupeError(
                .duplicateName,
                "supervisor '\(name)' already has a child named '\(child)'. Delete it first, or pick another name."
            )
        case .running:
            return TroupeError(
                .childRunning,
                "child '\(child)' of supervisor '\(name)' is running. Terminate it first, then delete it."
            )
        case .restarting:
            return TroupeError(
                .childRestarting,
                "child '\(child)' of supervisor '\(name)' is being restarted (waiting to start, or being stopped). "
                    + "Try again once it runs."
            )
        }
    }

    /// Carries out an operator request inside the supervise loop.
    private func handle(_ request: Request, reply: CheckedContinuation<Void, any Error>) async {
        let now = environment.clock.now
        switch request {
        case .start(let spec):
            do {
                guard machine.child(spec.name) == nil else { throw refusal(.duplicate, child: spec.name) }
                let runtime = try spec.make(factoryContext)
                try machine.startChild(spec.name, restart: spec.restart, at: now)
                add(Entry(spec: spec, runtime: runtime, slot: machine.slot(of: spec.name)!))
                startReplies[spec.name, default: []].append(reply)
            } catch let error as StateMachine.Refusal {
                reply.resume(throwing: refusal(error, child: spec.name))
            } catch {
                reply.resume(throwing: error)
            }
        case .terminate(let name):
            do {
                let (number, removed) = try machine.terminateChild(name)
                let entry = entries[name]
                if let number {
                    if let incarnation = entry?.incarnation, incarnation.number == number {
                        await stop(name, incarnation, graceful: true)
                    }
                    machine.stopFinished(name, incarnation: number, then: removed ? .remove : .keep)
                }
                answerStart(of: name, failure: .stopped)
                if removed {
                    await remove(name)
                } else {
                    entry?.turnAway()
                }
                reply.resume()
            } catch {
                reply.resume(throwing: refusal(error, child: name))
            }
        case .restart(let name, let fresh):
            do {
                let number = try machine.restartChild(name, at: now)
                let entry = entries[name]
                entry?.runtime.operatorRestartOnce(fresh: fresh)
                if let number {
                    if let incarnation = entry?.incarnation, incarnation.number == number {
                        await stop(name, incarnation, graceful: true)
                    }
                    machine.stopFinished(name, incarnation: number, then: .restart(notBefore: environment.clock.now))
                }
                guard let state = machine.child(name), case .queued = state.phase else {
                    reply.resume(throwing: notRunningError(child: name))
                    return
                }
                environment.metrics?.restarted(1, reason: "operator")
                environment.events.emit(
                    name,
                    incarnation: state.incarnations + 1,
                    .restarting(after: .zero, restarts: state.restarts)
                )
                startReplies[name, default: []].append(reply)
            } catch {
                reply.resume(throwing: refusal(error, child: name))
            }
        case .delete(let name):
            do {
                try machine.deleteChild(name)
                await remove(name)
                reply.resume()
            } catch {
                reply.resume(throwing: refusal(error, child: name))
            }
        }
    }

    /// Answers the requests waiting for `name` to start: its `setUp` returned (`failure` nil), or it ended first.
    private func answerStart(of name: String, failure: ExitReason?) {
        guard !startReplies.isEmpty, let replies = startReplies.removeValue(forKey: name) else { return }
        for reply in replies {
            switch failure {
            case nil: reply.resume()
            case .failed(let error): reply.resume(throwing: error)
            case .some:
                reply.resume(
                    throwing: TroupeError(
                        .childNotStopped,
                        "child '\(name)' of supervisor '\(self.name)' ended (\(failure!)) before it finished starting."
                    )
                )
            }
        }
    }

    // MARK: Dynamic children

    /// Adds a child at the end of the start order and starts it; returns once its ``Agent/setUp(context:)`` has
    /// returned (OTP's `start_child`).
    ///
    /// - Parameter child: A ``Child``, ``Pool`` or ``Blueprint``.
    /// - Throws: ``TroupeError/Code/duplicateName`` if the name is taken in the run,
    ///   ``TroupeError/Code/notRunning``, or what the child's first `setUp` threw (the child stays, under its
    ///   restart type).
    public func startChild(_ child: some BlueprintComponent) async throws {
        try await submit(.start(child.spec))
    }

    /// Stops a child through its shutdown ladder. A ``ChildSpec/Restart/temporary`` child is then removed (as in
    /// OTP); any other is kept, stopped, until ``restartChild(_:)`` or ``deleteChild(_:)``. Messages sent to a kept
    /// child meanwhile are refused with ``TroupeError/Code/addressStopped``; messages already queued wait for its
    /// restart. A child waiting out a restart delay is taken out of the start queue.
    ///
    /// - Throws: ``TroupeError/Code/unknownChild``, ``TroupeError/Code/childRestarting`` if it is being stopped
    ///   already, or ``TroupeError/Code/notRunning``.
    public func terminateChild(_ name: String) async throws {
        try await submit(.terminate(name))
    }

    /// Starts a new incarnation of a child, resuming from its last checkpoint, and returns once its `setUp` has
    /// returned. A running child is first stopped through its shutdown ladder (OTP's `restart_child` accepts only
    /// terminated children; Troupe restarts running ones too). Operator restarts do not count towards the restart
    /// intensity. The child's ``ChildInfo/restarts`` grows only when a running child is restarted: starting a
    /// stopped one (after ``terminateChild(_:)``, an operator's pause, a quarantine) is no restart.
    ///
    /// - Throws: ``TroupeError/Code/unknownChild``, ``TroupeError/Code/childRestarting`` if the child is waiting
    ///   to start or being stopped (OTP's `{error, restarting}`), or ``TroupeError/Code/notRunning``.
    public func restartChild(_ name: String) async throws {
        try await restartChild(name, fresh: false)
    }

    /// Starts a new incarnation of a child; with `fresh`, from its initial state instead of its last checkpoint
    /// (the checkpoints stay in the store). For an agent quarantined by a checkpoint it cannot read, a fresh
    /// restart is the way back.
    ///
    /// - Throws: As ``restartChild(_:)``.
    public func restartChild(_ name: String, fresh: Bool) async throws {
        try await submit(.restart(name, fresh: fresh))
    }

    /// Removes a stopped child: frees its name, and sets aside any messages still queued for it as dead letters.
    ///
    /// - Throws: ``TroupeError/Code/unknownChild``, ``TroupeError/Code/childRunning`` if it is running
    ///   (terminate it first), ``TroupeError/Code/childRestarting`` if it is waiting to start, or
    ///   ``TroupeError/Code/notRunning``.
    public func deleteChild(_ name: String) async throws {
        try await submit(.delete(name))
    }

    /// The children in start order, with their status; nested supervisors list their own children.
    public func children() async -> [ChildInfo] {
        var result: [ChildInfo] = []
        result.reserveCapacity(machine.order.count)
        for name in machine.order {
            guard let entry = entries[name], let child = machine.child(name) else { continue }
            let status: ChildInfo.Status
            switch child.phase {
            case .queued: status = .restarting
            case .starting, .running: status = .running
            case .stopping: status = .stopping
            case .idle, .stopped: status = .stopped
            case .exited, .quarantined: status = .exited
            }
            let live = child.phase.incarnation != nil
            var info = ChildInfo(
                name: name,
                typeName: entry.runtime.typeName,
                restart: entry.spec.restart,
                status: status,
                incarnation: child.incarnations,
                restarts: child.restarts,
                mailboxDepth: entry.runtime.mailboxDepth,
                isPassivated: live && entry.runtime.isPassivated,
                waiting: live ? entry.runtime.waiting : nil
            )
            if let nested = entry.runtime.supervisor { info.children = await nested.children() }
            result.append(info)
        }
        return result
    }

    /// Counts the children, like OTP's `count_children`: `active` counts children with a live incarnation, not
    /// those waiting out a restart delay or being stopped.
    public func count() -> ChildCount {
        var count = ChildCount()
        for name in machine.order {
            guard let entry = entries[name], let child = machine.child(name) else { continue }
            count.specs += 1
            switch child.phase {
            case .starting, .running: count.active += 1
            default: break
            }
            if entry.runtime.supervisor != nil { count.supervisors += 1 } else { count.workers += 1 }
        }
        return count
    }

    /// Delivers a signal to the agent named `child`, searched depth-first from this supervisor.
    func signal(_ child: String, id: Int64, name: String, payload: [UInt8]) async throws {
        guard let owner = await supervisor(of: child), let runtime = await owner.runtime(of: child) else {
            throw TroupeError(.unknownChild, "the run has no agent '\(child)'")
        }
        try await runtime.signal(id: id, name: name, payload: payload)
    }

    /// The runtime of the direct child named `child`.
    func runtime(of child: String) -> (any ChildRuntime)? { entries[child]?.runtime }

    /// The supervisor whose direct child is named `child`, searched depth-first from this one.
    public func supervisor(of child: String) async -> Supervisor? {
        if entries[child] != nil { return self }
        for name in machine.order {
            guard let nested = entries[name]?.runtime.supervisor else { continue }
            if let found = await nested.supervisor(of: child) { return found }
        }
        return nil
    }

    /// The nested supervisor (or pool) with this name, searched depth-first through the tree.
    public func supervisor(named name: String) async -> Supervisor? {
        if name == self.name { return self }
        for child in machine.order {
            guard let nested = entries[child]?.runtime.supervisor else { continue }
            if let found = await nested.supervisor(named: name) { return found }
        }
        return nil
    }

    /// Removes every child for good (the supervisor itself is being deleted from its parent).
    func removeAll() async {
        for name in machine.order {
            await entries[name]?.runtime.remove()
        }
        entries = [:]
        entriesBySlot = []
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
    /// What its incarnation waits for (a signal, a durable timer), if anything.
    public var waiting: Waiting?
    /// A nested supervisor's children; empty for agents.
    public var children: [ChildInfo] = []
}

extension ChildInfo {
    /// The agents (children without children) of a tree, in start order.
    package static func agents(of tree: [ChildInfo]) -> [ChildInfo] {
        tree.flatMap { $0.children.isEmpty ? [$0] : agents(of: $0.children) }
    }

    /// Whether a tree's work is done: it has agents, and every one of them has exited for good.
    package static func allEnded(_ tree: [ChildInfo]) -> Bool {
        let agents = agents(of: tree)
        return !agents.isEmpty && agents.allSatisfy { $0.status == .exited }
    }
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

    @usableFromInline func operatorRestartOnce(fresh: Bool) {}
    @usableFromInline func claimRequest(_ number: UInt64) -> ClaimRequest? { nil }
    @usableFromInline var claimsAhead: Bool { false }
    @usableFromInline func prepare(_ number: UInt64, claimed: Result<Claim, any Error>) async {}
    @usableFromInline func discardPrepared() {}

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
    var waiting: Waiting? { nil }

    @usableFromInline
    func signal(id: Int64, name: String, payload: [UInt8]) async throws {
        throw TroupeError(.unknownChild, "'\(self.name)' is a supervisor; signals go to agents")
    }

    @usableFromInline
    func start(_ incarnation: Incarnation) async -> Bool {
        let started = OneShot<Bool>()
        incarnation.activate {
            let reason = await self.run(incarnation, started: started)
            started.fulfill(false)
            await incarnation.finish(reason)
        }
        // The nested supervisor says so once its own children have started (or it ends first).
        return await started.wait() ?? false
    }

    @usableFromInline
    func run(_ incarnation: Incarnation) async -> ExitReason? {
        await run(incarnation, started: nil)
    }

    private func run(_ incarnation: Incarnation, started: OneShot<Bool>?) async -> ExitReason {
        do {
            try await nested.run(incarnation: incarnation, started: started)
            if incarnation.isCancelled || Task.isCancelled { return .cancelled }
            return incarnation.isStopping ? .stopped : .normal
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
    func refuse(because error: TroupeError) {}

    @usableFromInline
    func remove() async {
        nested.environment.registry.unregister(nested.name)
        await nested.removeAll()
    }
}

/// The claims a supervisor makes ahead of a run of starts: the due children, in start order, cut into batches
/// of claiming children; one batch is claimed (in a child task of the start loop) while the previous one starts.
/// Its state changes only in the start loop.
private struct AheadClaims {
    /// How many claims one store call makes: enough for a set-based claim, few enough for the first starts not to
    /// wait long.
    static let batch = ClaimRequest.batchSize

    struct Child {
        let name: String
        let incarnation: UInt64
        let runtime: any ChildRuntime
        let request: ClaimRequest?
    }

    /// The children seen so far, in start order.
    private var due: [Child] = []
    /// The next child to launch.
    private var position = 0
    /// Children before this position have their claims prepared (or claim nothing).
    private var preparedEnd = 0
    /// The batch being claimed, as a range of `due`.
    private var claiming: Range<Int>?

    /// How many children the loop has seen but not launched yet (they are at the front of the start queue).
    var unlaunched: Int { due.count - position }

    /// Adds the next batch; `claiming` says whether a claim for it is under way.
    mutating func add(_ batch: [Child], claiming: Bool) {
        let range = due.count..<(due.count + batch.count)
        due += batch
        if claiming { self.claiming = range } else { preparedEnd = range.upperBound }
    }

    /// The start loop launches `name`: `false` if the starts left the order claimed ahead (a start ended early,
    /// or the queue changed).
    mutating func launching(_ name: String, _ incarnation: UInt64) -> Bool {
        guard position < due.count, due[position].name == name, due[position].incarnation == incarnation else {
            return false
        }
        position += 1
        return true
    }

    /// Whether the child being launched waits for the batch being claimed.
    var awaitsBatch: Bool { position > preparedEnd && claiming != nil }

    /// Hands the claimed batch (the group's result for it) to its children's runtimes.
    mutating func prepare(_ claimed: Result<[Claim], any Error>?) async {
        guard let range = claiming else { return }
        let claims = claimed ?? .failure(CancellationError())
        var index = 0
        for child in due[range] {
            guard let request = child.request else { continue }
            await child.runtime.prepare(request.incarnation, claimed: claims.map { $0[index] })
            index += 1
        }
        preparedEnd = range.upperBound
        claiming = nil
    }

    /// Forgets the claims prepared for children that were not launched.
    mutating func discard() {
        for child in due[min(position, preparedEnd)..<preparedEnd] where child.request != nil {
            child.runtime.discardPrepared()
        }
        preparedEnd = position
    }
}
