public import FoundationEssentials
import Logging
import Synchronization

/// What an agent is waiting for, as operators see it (`troupe tree`, `describe`, the console).
public struct Waiting: Sendable, Codable, Hashable {
    /// What ends the wait: `signal 'NAME'`, or `timer`.
    public var what: String
    /// When the wait began (kept across restarts and resumes, like the wait itself).
    public var since: Date
    /// When it ends by itself: a timer's deadline, a signal's timeout; `nil` for none.
    public var until: Date?

    /// Creates a description of a wait.
    public init(what: String, since: Date, until: Date? = nil) {
        self.what = what
        self.since = since
        self.until = until
    }
}

/// One agent's signals not yet taken, and what its incarnation waits for. Made at the first use.
final class AgentWaits: Sendable {
    struct Signal: Sendable {
        let id: Int64
        let name: String
        let payload: [UInt8]
    }

    private struct State {
        var pending: [Signal] = []
        var waiters: [UInt64: (name: String, continuation: CheckedContinuation<Void, Never>)] = [:]
        var nextWaiter: UInt64 = 0
        var waiting: Waiting?
    }

    private let state = Mutex(State())

    /// What the incarnation waits for now.
    var waiting: Waiting? {
        get { state.withLock { $0.waiting } }
        set { state.withLock { $0.waiting = newValue } }
    }

    /// Adds signals (a claim's, or one delivered live), each once, in id order; wakes a waiter for their names.
    func add(_ signals: [Signal]) {
        let woken = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            let known = Set(state.pending.map(\.id))
            state.pending += signals.filter { !known.contains($0.id) }
            state.pending.sort { $0.id < $1.id }
            let names = Set(signals.map(\.name))
            let matching = state.waiters.filter { names.contains($0.value.name) }
            for key in matching.keys { state.waiters[key] = nil }
            return matching.values.map(\.continuation)
        }
        for continuation in woken { continuation.resume() }
    }

    /// The same as ``add(_:)``, for what a claim returned.
    func load(_ signals: [Signal]) { add(signals) }

    /// Takes the oldest signal named `name`, if one is waiting.
    func take(_ name: String) -> Signal? {
        state.withLock { state in
            guard let index = state.pending.firstIndex(where: { $0.name == name }) else { return nil }
            return state.pending.remove(at: index)
        }
    }

    /// Whether a signal named `name` is waiting.
    func has(_ name: String) -> Bool {
        state.withLock { $0.pending.contains { $0.name == name } }
    }

    /// Forgets signal `id`: a unit of work replaying its record took it already.
    func remove(_ id: Int64) {
        state.withLock { $0.pending.removeAll { $0.id == id } }
    }

    /// Returns once a signal named `name` is waiting, or the task is cancelled.
    func arrival(of name: String) async {
        let key = state.withLock { state -> UInt64 in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let ready = state.withLock { state -> Bool in
                    if Task.isCancelled || state.pending.contains(where: { $0.name == name }) { return true }
                    state.waiters[key] = (name, continuation)
                    return false
                }
                if ready { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: key) }?.continuation.resume()
        }
    }
}

extension AgentCell {
    /// The cell's signals and waits, made at the first use.
    func waitsBox() -> AgentWaits {
        waits.withLock { waits in
            if let waits { return waits }
            let made = AgentWaits()
            waits = made
            return made
        }
    }

    /// The signals among a claim's recorded steps: keys `s<id>/<name>`.
    func claimedSignals(_ steps: [String: [UInt8]]) -> [AgentWaits.Signal] {
        steps.compactMap { key, payload in
            guard key.hasPrefix("s"), let slash = key.firstIndex(of: "/"), let id = Int64(key[key.index(after: key.startIndex)..<slash])
            else { return nil }
            return AgentWaits.Signal(id: id, name: String(key[key.index(after: slash)...]), payload: payload)
        }
    }

    /// What the agent waits for now, if anything.
    @usableFromInline var waiting: Waiting? { waits.withLock { $0 }?.waiting }

    /// Delivers signal `id` named `name`: stored first for a checkpointed or durable agent (under the epoch of its
    /// latest claim, retried while a restart replaces it), so that it waits for the agent across a crash, a
    /// restart or a resume, until a unit of work that took it commits.
    @usableFromInline
    func signal(id: Int64, name: String, payload: [UInt8]) async throws {
        if durability.persistsState {
            try await environment.attached()
            var attempts = 0
            while true {
                do {
                    try await environment.store.recordStep(
                        self.id, epoch: currentEpoch.load(ordering: .relaxed), key: "s\(id)/\(name)", result: payload
                    )
                    break
                } catch let error as TroupeError where error.code == .fenced && attempts < 250 {
                    // A restart is claiming the agent: its new epoch comes with the claim.
                    attempts += 1
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
        }
        waitsBox().add([AgentWaits.Signal(id: id, name: name, payload: payload)])
    }
}

extension AgentContext {
    /// What a unit of work recorded for a signal it waited for: the signal it took, or that the wait timed out.
    private struct TakenSignal: Codable {
        var id: Int64?
        var payload: [UInt8]?
    }

    /// When a wait began and when it times out, recorded so that a replayed wait keeps both.
    private struct WaitTimes: Codable {
        var since: Int64
        var until: Int64?
    }

    /// Waits for the signal `name` (sent by `troupe signal RUN AGENT NAME JSON`, or ``Run/signal(_:_:to:)``)
    /// and returns its value, or `nil` if `timeout` passes first. For a checkpointed or durable agent the wait is
    /// durable: a signal sent while the agent waits, crashes, restarts or is resumed after `kill -9` is kept in the
    /// store until a unit of work takes it, and that unit takes it exactly once — if the unit runs again before it
    /// commits, it gets the same signal again, not the next one. The timeout's deadline and the wait's start are
    /// recorded too, so a resumed wait ends when the first one would have.
    ///
    /// ```swift
    /// guard let decision = try await context.signal("approve", as: Decision.self, timeout: .seconds(48 * 3600)) else {
    ///     return  // nobody answered in two days
    /// }
    /// ```
    ///
    /// While it waits, `troupe tree` and `troupe describe` show `signal 'approve'` and since when. A signal whose
    /// JSON does not decode as `T` is logged and dropped, and the wait goes on.
    ///
    /// - Parameters:
    ///   - name: The signal's name: letters, digits, `.`, `_` and `-`.
    ///   - type: What the signal carries, decoded from its JSON.
    ///   - timeout: How long to wait at most; `nil` to wait until a signal comes or the agent is stopped.
    /// - Returns: The signal's value, or `nil` on timeout.
    /// - Throws: `CancellationError` when the agent is asked to stop while it waits, and the store's errors.
    public func signal<T: Decodable & Sendable>(_ name: String, as type: T.Type = T.self, timeout: Duration? = nil) async throws -> T? {
        let persists = cell.durability.persistsState
        let box = cell.waitsBox()
        let (key, recorded) = work.nextStep("signal:\(name)", fallback: "c\(cell.currentSequence)")
        if persists, let recorded, let taken = try? JSONDecoder().decode(TakenSignal.self, from: Data(recorded)) {
            // The unit runs again: what it took then is what it gets now.
            guard let id = taken.id, let payload = taken.payload else { return nil }
            box.remove(id)
            work.tookSignal(id)
            if let value = decodeSignal(name, id: id, payload, as: T.self) { return value }
        }
        let times = try await waitTimes(key: key + ".wait", timeout: timeout, persists: persists)
        // Published with the tree at once (a lifecycle change), so `troupe tree` shows the wait within 100 ms.
        let events = cell.environment.events
        box.waiting = Waiting(what: "signal '\(name)'", since: times.since, until: times.until)
        events.treeChanges.add(1, ordering: .relaxed)
        defer {
            box.waiting = nil
            events.treeChanges.add(1, ordering: .relaxed)
        }
        while true {
            if let signal = box.take(name) {
                if persists {
                    let record = TakenSignal(id: signal.id, payload: signal.payload)
                    try await recordStep(key, Array(try JSONEncoder().encode(record)))
                    work.tookSignal(signal.id)
                }
                if let value = decodeSignal(name, id: signal.id, signal.payload, as: T.self) { return value }
                continue
            }
            if let until = times.until, until <= Date() {
                if persists { try await recordStep(key, Array(try JSONEncoder().encode(TakenSignal()))) }
                return nil
            }
            let remaining = times.until.map { Duration.milliseconds(Int64(($0.timeIntervalSinceNow * 1000).rounded(.up))) }
            let control = incarnationControl
            let clock = cell.environment.clock
            let stopped = await withTaskGroup(of: Bool.self) { group in
                group.addTask {
                    await box.arrival(of: name)
                    return false
                }
                group.addTask {
                    // Ends on the timeout, or with `false` when the agent is asked to stop.
                    let elapsed = await control.sleep(for: remaining ?? .seconds(3_153_600_000), clock: clock)
                    return !elapsed
                }
                let first = await group.next() ?? true
                group.cancelAll()
                return first
            }
            if stopped, !box.has(name) { throw CancellationError() }
        }
    }

    /// `payload` as `T`, or `nil` after logging why not.
    private func decodeSignal<T: Decodable>(_ name: String, id: Int64, _ payload: [UInt8], as type: T.Type) -> T? {
        do {
            return try JSONDecoder().decode(T.self, from: Data(payload))
        } catch {
            logger.error("signal '\(name)' #\(id) does not decode as \(T.self) (\(error)); dropped, still waiting")
            return nil
        }
    }

    /// When this wait began and when it times out: as an earlier attempt of the unit recorded them, else now.
    private func waitTimes(key: String, timeout: Duration?, persists: Bool) async throws -> (since: Date, until: Date?) {
        if persists, let recorded = work.recorded(key), let times = try? JSONDecoder().decode(WaitTimes.self, from: Data(recorded)) {
            return (Date(milliseconds: times.since), times.until.map(Date.init(milliseconds:)))
        }
        let now = Date()
        let until = timeout.map { now.addingTimeInterval($0.seconds) }
        if persists {
            let times = WaitTimes(since: now.milliseconds, until: until?.milliseconds)
            try await recordStep(key, Array(try JSONEncoder().encode(times)))
        }
        return (now, until)
    }

    /// Records a step's result in the store and in the unit.
    private func recordStep(_ key: String, _ result: [UInt8]) async throws {
        try await cell.environment.store.recordStep(
            cell.id, epoch: incarnationControl.epoch.load(ordering: .relaxed), key: key, result: result
        )
        work.record(key, result: result)
    }
}

extension Date {
    /// The time `milliseconds` after 1970, as durable timers and waits record it.
    init(milliseconds: Int64) { self.init(timeIntervalSince1970: Double(milliseconds) / 1000) }

    /// Milliseconds since 1970, rounded, as durable timers and waits record them.
    var milliseconds: Int64 { Int64((timeIntervalSince1970 * 1000).rounded()) }
}

extension Duration {
    /// The duration in seconds.
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
