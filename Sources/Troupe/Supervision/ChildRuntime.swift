public import Synchronization

/// A supervisor's view of one child, whatever it is: an agent, or a nested supervisor (which is also how pools
/// run). The runtime outlives incarnations: it owns the agent's mailbox and in-memory checkpoint.
@usableFromInline
protocol ChildRuntime: AnyObject, Sendable {
    var name: String { get }
    /// What the child runs, for listings: the agent's type name, or "supervisor".
    var typeName: String { get }
    /// The nested supervisor, if the child is one.
    var supervisor: Supervisor? { get }
    /// Messages waiting for the child (0 for supervisors).
    var mailboxDepth: Int { get }
    /// Whether the child's incarnation is passivated: alive, but holding no task until it has work.
    var isPassivated: Bool { get }
    /// What the child's incarnation waits for (a signal, a durable timer), if anything.
    var waiting: Waiting? { get }
    /// Delivers a signal (``AgentContext/signal(_:as:timeout:)``), stored first if the agent persists its state.
    func signal(id: Int64, name: String, payload: [UInt8]) async throws

    /// Starts an incarnation: an agent claims its checkpoint and runs its `setUp` on the caller's task, then its
    /// message loop continues on a task of its own; a nested supervisor starts its children. Returns once that is
    /// done: `true` if the incarnation runs, `false` if it ended during its start (its end is then reported through
    /// ``Incarnation/finish(_:)`` as any other). The supervisor calls it from its loop, one child at a time: this is
    /// OTP's synchronous start.
    func start(_ incarnation: Incarnation) async -> Bool
    /// Runs a started incarnation, or resumes a passivated one, and says how it ended. Never throws: failures are exit
    /// reasons. Returns `nil` if the incarnation passivated instead (an idle agent holds no task): whichever task
    /// resumes it later reports its end through ``Incarnation/finish(_:)``.
    func run(_ incarnation: Incarnation) async -> ExitReason?
    /// Asks the running incarnation to stop gracefully: finish what it is doing, checkpoint, return.
    func requestStop(_ incarnation: Incarnation)
    /// Cancels the incarnation's task (waking it first if it is passivated).
    func cancel(_ incarnation: Incarnation)
    /// Lets senders reach the child again, or turns them away while it is stopped.
    func setAccepting(_ accepting: Bool)
    /// Turns senders away with `error` (a quarantined agent) until the child accepts messages again.
    func refuse(because error: TroupeError)
    /// Removes the child for good: frees its name and sets aside its undelivered messages as dead letters.
    func remove() async

    /// An operator's restart: the next incarnation runs even if the child had ended for good, and with `fresh`
    /// starts from the initial state instead of the last checkpoint (once).
    func operatorRestartOnce(fresh: Bool)

    /// What the child claims from the store when incarnation `number` starts, or `nil` if it claims nothing; the
    /// supervisor can claim it ahead, with its siblings', and hand the result to ``prepare(_:claimed:)``.
    func claimRequest(_ number: UInt64) -> ClaimRequest?
    /// Whether ``claimRequest(_:)`` returns requests at all (the child persists its state).
    var claimsAhead: Bool { get }
    /// Takes the claim made ahead for incarnation `number` (or its failure), so that the start uses it instead
    /// of claiming again: the claims of many children are one store call while their starts still run one after
    /// the other.
    func prepare(_ number: UInt64, claimed: Result<Claim, any Error>) async
    /// Forgets a claim made ahead that no start used.
    func discardPrepared()
}

/// Hears how its children's incarnations end: one per supervisor run, shared by every incarnation it starts, so that
/// a start or a restart allocates nothing to report its end.
protocol ExitReporter: AnyObject, Sendable {
    /// Incarnation `number` of child `name` ended with `reason`; called once, on the task that ran it last.
    func report(_ name: String, incarnation number: UInt64, _ reason: ExitReason) async
}

/// One incarnation of a child: its number (the epoch), the graceful-stop request, its cancellation, the task
/// currently running it, and its exit.
///
/// An agent's incarnation may run on several tasks in turn: it passivates (ends its task) when its mailbox is empty
/// and resumes on a new task when a message arrives. Cancellation therefore belongs to the incarnation, not to one
/// task: a task that starts running it after it was cancelled is cancelled at once.
@usableFromInline
final class Incarnation: Sendable {
    @usableFromInline let number: UInt64
    /// The fencing token the store gave this incarnation's claim (0 until claimed).
    @usableFromInline let epoch = Atomic<UInt64>(0)
    @usableFromInline let stopping = Atomic<Bool>(false)
    /// Whether the incarnation was cancelled (the ladder's second rung, or the run's cancellation).
    private let wasCancelled = Atomic<Bool>(false)
    private let finished = Atomic<Bool>(false)
    /// The child's name, for the report of its end.
    private let name: String
    private let reporter: any ExitReporter
    private let activations = Mutex<(latest: UInt64, task: Task<Void, Never>?, cancelled: Bool)>((0, nil, false))

    /// A value set once, whose waiters' `OneShot` is made only when somebody waits (a sleeping agent, the stop
    /// ladder): most incarnations never have a waiter, and an idle agent's incarnation lives as long as the agent.
    private struct LazySignal<Value: Sendable> {
        var value: Value?
        var waiters: OneShot<Value>?

        /// The signal to wait on, fulfilled already if the value is set.
        mutating func waiter() -> OneShot<Value> {
            if let waiters { return waiters }
            let made = OneShot<Value>()
            if let value { made.fulfill(value) }
            waiters = made
            return made
        }

        /// Sets the value; returns the signal to fulfill with it (outside the lock), if anybody waits.
        mutating func set(_ value: Value) -> OneShot<Value>? {
            self.value = value
            return waiters
        }
    }
    private let signals = Mutex((stop: LazySignal<Void>(), exit: LazySignal<ExitReason>()))

    /// - Parameters:
    ///   - number: The incarnation's number in this process.
    ///   - name: The child's name.
    ///   - reporter: Tells the supervisor how the incarnation ended.
    init(number: UInt64, name: String, reporter: any ExitReporter) {
        self.number = number
        self.name = name
        self.reporter = reporter
    }

    /// Fulfilled when a graceful stop is requested, so that sleepers wake.
    var stopRequested: OneShot<Void> { signals.withLock { $0.stop.waiter() } }

    /// Fulfilled with the exit reason when the incarnation has ended.
    var exit: OneShot<ExitReason> { signals.withLock { $0.exit.waiter() } }

    @inlinable
    var isStopping: Bool { stopping.load(ordering: .relaxed) }

    /// Set by ``AgentContext/finish()``: the agent is done and leaves its loop after the message in hand.
    @usableFromInline let finishing = Atomic<Bool>(false)

    /// Whether the handler loop should leave: asked to stop, or the agent said it is done.
    @inlinable
    var shouldLeave: Bool { stopping.load(ordering: .relaxed) || finishing.load(ordering: .relaxed) }


    /// Whether the incarnation was cancelled rather than only asked to stop.
    @usableFromInline
    var isCancelled: Bool { wasCancelled.load(ordering: .relaxed) }

    func requestStop() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        signals.withLock { $0.stop.set(()) }?.fulfill(())
    }

    /// Starts a task that runs (or resumes) the incarnation and records it as the incarnation's current task.
    @usableFromInline
    func activate(_ body: @escaping @Sendable () async -> Void) {
        // Number the activation before the task exists: if the task passivates and a newer activation registers
        // before this call records its own, the older one must not overwrite it.
        let activation = activations.withLock { state in
            state.latest += 1
            return state.latest
        }
        let task = Task.detached { [self] in
            await body()
            // Drop the handle of a task that has ended (or passivated): a finished task object stays allocated for
            // as long as someone holds its handle, which would cost a passivated agent what passivation saves.
            activations.withLock { state in
                if state.latest == activation { state.task = nil }
            }
        }
        let cancelled = activations.withLock { state -> Bool in
            guard activation == state.latest else { return false }
            state.task = task
            return state.cancelled
        }
        if cancelled { task.cancel() }
    }

    /// Cancels the task running the incarnation, and every task that resumes it later.
    func cancel() {
        wasCancelled.store(true, ordering: .relaxed)
        let task = activations.withLock { state -> Task<Void, Never>? in
            state.cancelled = true
            return state.task
        }
        task?.cancel()
    }

    /// Reports the incarnation's end to its supervisor, once: the report (the `exited` event) comes before the
    /// exit is visible to waiters, so that a supervisor stopping the child sees its events in order and none after
    /// the run has ended. The report may carry out the supervisor's decision on this task (see
    /// ``Supervisor``'s loop), so the caller's task should be about to end.
    @usableFromInline
    func finish(_ reason: ExitReason) async {
        guard !finished.exchange(true, ordering: .acquiringAndReleasing) else { return }
        await reporter.report(name, incarnation: number, reason)
        signals.withLock { $0.exit.set(reason) }?.fulfill(reason)
    }

    /// Sleeps for `duration`, returning early (with `false`) if a stop is requested or the task is cancelled.
    func sleep(for duration: Duration, clock: EngineClock) async -> Bool {
        if isStopping || Task.isCancelled { return false }
        if duration <= .zero { return true }
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                do {
                    try await clock.sleep(for: duration)
                    return true
                } catch {
                    return false
                }
            }
            group.addTask {
                _ = await self.stopRequested.wait()
                return false
            }
            let elapsed = await group.next() ?? false
            group.cancelAll()
            return elapsed && !Task.isCancelled
        }
    }
}
