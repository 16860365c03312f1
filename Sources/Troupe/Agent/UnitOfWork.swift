import Synchronization

/// What one incarnation has done since its last commit — its unit of work — each part under a lock.
///
/// A unit of work is the stretch between two commits: one batch of messages (handler style) or the stretch since
/// the last ``AgentContext/checkpoint(_:)`` (loop style). It holds:
/// - the durable messages a loop-style agent took from ``AgentContext/messages`` (`taken`), removed from the inbox
///   by the commit;
/// - the messages a durable agent sent (`outbox`), delivered only after the commit;
/// - recorded step results the unit may replay (`replay`), and how many times each step name ran in it;
/// - the message whose unit is open (`scope`, `m<id>`), while a durable handler handles it.
///
/// A commit takes what it carries in one step (``takeForCommit(consumed:)``), then either confirms it
/// (``committed(consumed:sequence:signals:)``, which ends the finished units' steps) or gives the taken messages and
/// signals back (``restoreAfterFailedCommit(signals:)``). An incarnation that ends without committing gives
/// everything up (``abandon()``).
///
/// Everything but the taken messages lives in a state that does not depend on the message type, and the messages a
/// commit carries stay here until it ends: nothing generic crosses a commit's path, so the engine's unspecialized
/// code commits without looking up generic metadata (those lookups, and the lock of a generic state, were about a
/// twentieth of an agent's side of the 1,000-agent checkpoint benchmark). The taken messages have a lock of their
/// own and a count read without it: a commit that carries none takes no lock for them.
@usableFromInline
final class UnitOfWork<Message: Sendable>: Sendable {
    private struct Taken: Sendable {
        /// Taken since the last commit.
        var messages: [Envelope<Message>] = []
        /// Carried by the commit in flight: gone when it succeeds, back in front of `messages` when it fails.
        var committing: [Envelope<Message>] = []
    }

    private let state: Mutex<UnitState>
    private let taken = Mutex(Taken())
    /// How many messages `taken` holds in all, written under its lock: zero lets a commit skip that lock. A commit
    /// that reads zero comes before any `took(_:)` it did not see, as it would had it taken the lock.
    private let takenCount = Atomic<Int>(0)

    /// - Parameter replay: Step results recorded by earlier attempts of units not committed yet (from the claim).
    @usableFromInline
    init(replay: [String: [UInt8]] = [:]) {
        state = Mutex(UnitState(replay: replay))
    }

    // MARK: Messages

    /// Holds a message a durable agent sent until its unit commits.
    func stage(_ outgoing: Outgoing) {
        state.withLock { $0.outbox.append(outgoing) }
    }

    /// Records a durable message a loop-style agent took from its mailbox.
    func took(_ envelope: Envelope<Message>) {
        taken.withLock { taken in
            taken.messages.append(envelope)
            takenCount.store(taken.messages.count + taken.committing.count, ordering: .releasing)
        }
    }

    /// How many messages the unit has sent so far.
    @usableFromInline
    var sentCount: Int { state.withLock { $0.outbox.count } }

    /// Whether the unit has sent messages that no commit has carried yet.
    @usableFromInline
    var hasOutgoing: Bool { state.withLock { !$0.outbox.isEmpty } }

    /// Forgets the messages sent from the `index`th on: they belong to a message whose handling failed.
    @usableFromInline
    func dropSent(from index: Int) {
        state.withLock { state in
            guard index < state.outbox.count else { return }
            state.outbox.removeSubrange(index...)
        }
    }

    // MARK: Scopes and steps

    /// Opens the unit of one durable message (`m<id>`) while a handler handles it; `nil` closes it.
    @usableFromInline
    func setScope(_ scope: String?) {
        state.withLock { $0.scope = scope }
    }

    /// The key of the next occurrence of step `name` in the open unit (or in `fallback`, the checkpoint's unit),
    /// and its recorded result if an earlier attempt of the unit stored one.
    func nextStep(_ name: String, fallback: @autoclosure () -> String) -> (key: String, recorded: [UInt8]?) {
        state.withLock { state in
            let scope = state.scope ?? fallback()
            let prefix = "\(scope)/\(name)"
            let occurrence = state.stepCounts[prefix, default: 0] + 1
            state.stepCounts[prefix] = occurrence
            let key = "\(prefix)#\(occurrence)"
            return (key, state.replay[key])
        }
    }

    /// The key of the open unit's durable timer (one per unit: each sleep replaces the last one's deadline) and,
    /// the first time it is asked in this incarnation, the deadline an earlier attempt of the unit recorded.
    func nextTimer(fallback: @autoclosure () -> String) -> (key: String, recorded: [UInt8]?) {
        state.withLock { state in
            let key = "\(state.scope ?? fallback())/sleep"
            return (key, state.replay.removeValue(forKey: key))
        }
    }

    /// The result an earlier attempt of the unit recorded under `key`, if any.
    func recorded(_ key: String) -> [UInt8]? {
        state.withLock { $0.replay[key] }
    }

    /// Notes that the unit took signal `id`: its commit deletes the signal's record.
    func tookSignal(_ id: Int64) {
        state.withLock { state in
            if !state.signals.contains("s\(id)") { state.signals.append("s\(id)") }
        }
    }

    /// Keeps a step's result for the rest of the unit (it is in the store already).
    func record(_ key: String, result: [UInt8]) {
        state.withLock { $0.replay[key] = result }
    }

    // MARK: Commits

    /// Takes what a commit carries: the identifiers of the durable messages taken (appended to `consumed`), the
    /// messages sent, and the scopes of the signals taken (whose records the commit deletes). The taken messages stay
    /// here until the commit ends.
    @usableFromInline
    func takeForCommit(consumed: inout [Int64]) -> (outbox: [Outgoing], signals: [String]) {
        if takenCount.load(ordering: .acquiring) > 0 {
            taken.withLock { taken in
                for envelope in taken.messages where envelope.id != 0 { consumed.append(envelope.id) }
                taken.committing.append(contentsOf: taken.messages)
                taken.messages.removeAll()
            }
        }
        return state.withLock { state in
            defer {
                state.outbox.removeAll()
                state.signals.removeAll()
            }
            return (state.outbox, state.signals)
        }
    }

    /// A commit failed: the messages and signals it took are the unit's again, before any taken since (its sent
    /// messages are gone: the incarnation ends, and its successor handles the messages again).
    @usableFromInline
    func restoreAfterFailedCommit(signals: [String]) {
        if takenCount.load(ordering: .acquiring) > 0 {
            taken.withLock { taken in
                taken.messages.insert(contentsOf: taken.committing, at: 0)
                taken.committing.removeAll()
            }
        }
        if !signals.isEmpty { state.withLock { $0.signals.insert(contentsOf: signals, at: 0) } }
    }

    /// A commit succeeded: the messages it carried are consumed, and the units it finished
    /// (``Commit/finishedScopes(consumed:sequence:signals:)``) are over: their recorded results must never be
    /// replayed again.
    @usableFromInline
    func committed(consumed: [Int64], sequence: UInt64, signals: [String]) {
        if takenCount.load(ordering: .acquiring) > 0 {
            taken.withLock { taken in
                taken.committing.removeAll()
                takenCount.store(taken.messages.count, ordering: .releasing)
            }
        }
        state.withLock { state in
            state.stepCounts.removeAll()
            guard !state.replay.isEmpty else { return }
            let prefixes = Commit.finishedScopes(consumed: consumed, sequence: sequence, signals: signals).map { $0 + "/" }
            state.replay = state.replay.filter { key, _ in !prefixes.contains { key.hasPrefix($0) } }
        }
    }

    /// The incarnation ends without committing: returns the messages it took (for the mailbox) and forgets what it
    /// sent, which nobody saw.
    @usableFromInline
    func abandon() -> [Envelope<Message>] {
        state.withLock { $0.outbox.removeAll() }
        guard takenCount.load(ordering: .acquiring) > 0 else { return [] }
        return taken.withLock { taken in
            defer {
                taken = Taken()
                takenCount.store(0, ordering: .releasing)
            }
            return taken.committing + taken.messages
        }
    }
}

/// What a unit of work holds besides the messages it took (see ``UnitOfWork``).
@usableFromInline
struct UnitState: Sendable {
    var outbox: [Outgoing] = []
    var replay: [String: [UInt8]]
    var stepCounts: [String: Int] = [:]
    var scope: String?
    /// The scopes (`s<id>`) of the signals the unit took: the commit that finishes the unit deletes them.
    var signals: [String] = []

    init(replay: [String: [UInt8]]) { self.replay = replay }
}
