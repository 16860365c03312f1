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

    /// Runs one incarnation to its end and says how it ended. Never throws: failures are exit reasons.
    func run(_ incarnation: Incarnation) async -> ExitReason
    /// Asks the running incarnation to stop gracefully: finish what it is doing, checkpoint, return.
    func requestStop(_ incarnation: Incarnation)
    /// Lets senders reach the child again, or turns them away while it is stopped.
    func setAccepting(_ accepting: Bool)
    /// Removes the child for good: frees its name and sets aside its undelivered messages as dead letters.
    func remove() async
}

/// One incarnation of a child: its number (the epoch), the graceful-stop request, and its exit.
@usableFromInline
final class Incarnation: Sendable {
    @usableFromInline let number: UInt64
    @usableFromInline let stopping = Atomic<Bool>(false)
    private let began = Atomic<Bool>(false)
    /// Fulfilled when a graceful stop is requested, so that sleepers wake.
    let stopRequested = OneShot<Void>()
    /// Fulfilled with the exit reason when the incarnation has ended.
    let exit = OneShot<ExitReason>()

    init(number: UInt64) { self.number = number }

    @inlinable
    var isStopping: Bool { stopping.load(ordering: .relaxed) }

    /// Whether the incarnation got past its restart delay.
    var hasBegun: Bool { began.load(ordering: .relaxed) }

    func markBegun() { began.store(true, ordering: .relaxed) }

    func requestStop() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        stopRequested.fulfill(())
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
