import Synchronization

/// What one incarnation has done since its last commit — its unit of work — under one lock.
///
/// A unit of work is the stretch between two commits: one batch of messages (handler style) or the stretch since
/// the last ``AgentContext/checkpoint(_:)`` (loop style). It holds:
/// - the durable messages a loop-style agent took from ``AgentContext/messages`` (`taken`), removed from the inbox
///   by the commit;
/// - the messages a durable agent sent (`outbox`), delivered only after the commit;
/// - recorded step results the unit may replay (`replay`), and how many times each step name ran in it;
/// - the message whose unit is open (`scope`, `m<id>`), while a durable handler handles it.
///
/// A commit takes what it carries in one step (``takeForCommit()``), then either confirms it
/// (``committed(consumed:sequence:signals:)``, which ends the finished units' steps) or gives the taken messages back
/// (``restore(_:)``). An incarnation that ends without committing gives everything up (``abandon()``).
@usableFromInline
final class UnitOfWork<Message: Sendable>: Sendable {
    private struct State: Sendable {
        var outbox: [Outgoing] = []
        var taken: [Envelope<Message>] = []
        var replay: [String: [UInt8]]
        var stepCounts: [String: Int] = [:]
        var scope: String?
        /// The scopes (`s<id>`) of the signals the unit took: the commit that finishes the unit deletes them.
        var signals: [String] = []

        init(replay: [String: [UInt8]]) { self.replay = replay }
    }

    private let state: Mutex<State>

    /// - Parameter replay: Step results recorded by earlier attempts of units not committed yet (from the claim).
    @usableFromInline
    init(replay: [String: [UInt8]] = [:]) {
        state = Mutex(State(replay: replay))
    }

    // MARK: Messages

    /// Holds a message a durable agent sent until its unit commits.
    func stage(_ outgoing: Outgoing) {
        state.withLock { $0.outbox.append(outgoing) }
    }

    /// Records a durable message a loop-style agent took from its mailbox.
    func took(_ envelope: Envelope<Message>) {
        state.withLock { $0.taken.append(envelope) }
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

    /// The signals the unit took, for its commit to delete; `restoreSignals(_:)` puts them back if it fails.
    func takeSignals() -> [String] {
        state.withLock { state in
            defer { state.signals.removeAll() }
            return state.signals
        }
    }

    func restoreSignals(_ scopes: [String]) {
        state.withLock { $0.signals.insert(contentsOf: scopes, at: 0) }
    }

    /// Keeps a step's result for the rest of the unit (it is in the store already).
    func record(_ key: String, result: [UInt8]) {
        state.withLock { $0.replay[key] = result }
    }

    // MARK: Commits

    /// Takes what a commit carries: the durable messages taken and the messages sent.
    @usableFromInline
    func takeForCommit() -> (taken: [Envelope<Message>], outbox: [Outgoing]) {
        state.withLock { state in
            defer {
                state.taken.removeAll()
                state.outbox.removeAll()
            }
            return (state.taken, state.outbox)
        }
    }

    /// A commit failed: the messages it took are the unit's again (its sent messages are gone: the incarnation
    /// ends, and its successor handles the messages again).
    @usableFromInline
    func restore(_ taken: [Envelope<Message>]) {
        state.withLock { $0.taken.insert(contentsOf: taken, at: 0) }
    }

    /// A commit succeeded: the units it finished (``Commit/finishedScopes(consumed:sequence:signals:)``) are over,
    /// and their recorded results must never be replayed again.
    @usableFromInline
    func committed(consumed: [Int64], sequence: UInt64, signals: [String]) {
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
        state.withLock { state in
            defer {
                state.taken.removeAll()
                state.outbox.removeAll()
            }
            return state.taken
        }
    }
}
