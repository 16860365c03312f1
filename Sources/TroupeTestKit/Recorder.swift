import Synchronization

/// Collects values from agents (or anything else) and lets a test wait until enough have arrived.
///
/// Share one with the agents under test, have them ``record(_:)``, and wait on the values instead of sleeping:
///
/// ```swift
/// let seen = Recorder<Int>()
/// // an agent's handler: seen.record(n)
/// let values = try await seen.wait(forCount: 3)
/// ```
///
/// Every wait has a deadline (60 seconds unless given) and ends if the waiting task is cancelled: a value that
/// never comes fails the test with ``Timeout``, saying what was recorded, instead of hanging the suite.
public final class Recorder<Value: Sendable>: Sendable {
    /// A wait that ran out of time.
    public struct Timeout: Error, CustomStringConvertible {
        /// What was waited for, how long, and what had been recorded by then.
        public var description: String
    }

    private struct Waiter {
        var id: UInt64
        var predicate: @Sendable ([Value]) -> Bool
        var continuation: UnsafeContinuation<[Value], any Error>
    }

    private struct State {
        var values: [Value] = []
        var waiters: [Waiter] = []
        var nextWaiter: UInt64 = 0
    }

    private let state = Mutex(State())

    /// Creates an empty recorder.
    public init() {}

    /// Everything recorded so far, in order.
    public var values: [Value] { state.withLock { $0.values } }

    /// Records a value and wakes the waiters it satisfies.
    public func record(_ value: Value) {
        let (ready, values) = state.withLock { state -> ([Waiter], [Value]) in
            state.values.append(value)
            let values = state.values
            var ready: [Waiter] = []
            state.waiters.removeAll { waiter in
                guard waiter.predicate(values) else { return false }
                ready.append(waiter)
                return true
            }
            return (ready, values)
        }
        for waiter in ready { waiter.continuation.resume(returning: values) }
    }

    /// Waits until the recorded values satisfy `predicate`, and returns them.
    ///
    /// - Parameters:
    ///   - timeout: How long to wait at most.
    ///   - what: What is awaited, for the timeout's message.
    ///   - predicate: The condition the values must satisfy.
    /// - Throws: ``Timeout`` when `timeout` passes first; `CancellationError` when the waiting task is cancelled.
    public func wait(
        timeout: Duration = .seconds(60),
        for what: String = "the values to satisfy the condition",
        until predicate: @escaping @Sendable ([Value]) -> Bool
    ) async throws -> [Value] {
        let id = state.withLock { state in
            state.nextWaiter &+= 1
            return state.nextWaiter
        }
        let deadline = Task { [weak self] in
            try await Task.sleep(for: timeout)
            self?.end(id) { values in
                Timeout(description: "waited \(timeout) for \(what); \(values.count) recorded: \(values.suffix(5))")
            }
        }
        defer { deadline.cancel() }
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { continuation in
                let ready = state.withLock { state -> Result<[Value], any Error>? in
                    if predicate(state.values) { return .success(state.values) }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    state.waiters.append(Waiter(id: id, predicate: predicate, continuation: continuation))
                    return nil
                }
                if let ready { continuation.resume(with: ready) }
            }
        } onCancel: {
            end(id) { _ in CancellationError() }
        }
    }

    /// Ends waiter `id`, if it still waits, with the error `reason` makes of the values recorded so far.
    private func end(_ id: UInt64, _ reason: ([Value]) -> any Error) {
        let ended = state.withLock { state -> (Waiter, [Value])? in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return (state.waiters.remove(at: index), state.values)
        }
        if let (waiter, values) = ended { waiter.continuation.resume(throwing: reason(values)) }
    }

    /// Waits until at least `count` values have been recorded, and returns them all.
    ///
    /// - Throws: ``Timeout`` when `timeout` passes first; `CancellationError` when the waiting task is cancelled.
    @discardableResult
    public func wait(forCount count: Int, timeout: Duration = .seconds(60)) async throws -> [Value] {
        try await wait(timeout: timeout, for: "\(count) values") { $0.count >= count }
    }
}
