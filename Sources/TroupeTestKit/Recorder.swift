import Synchronization

/// Collects values from agents (or anything else) and lets a test wait until enough have arrived.
///
/// Share one with the agents under test, have them ``record(_:)``, and wait on the values instead of sleeping:
///
/// ```swift
/// let seen = Recorder<Int>()
/// // an agent's handler: seen.record(n)
/// let values = await seen.wait(forCount: 3)
/// ```
public final class Recorder<Value: Sendable>: Sendable {
    private struct Waiter {
        var predicate: @Sendable ([Value]) -> Bool
        var continuation: UnsafeContinuation<[Value], Never>
    }

    private struct State {
        var values: [Value] = []
        var waiters: [Waiter] = []
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
    public func wait(until predicate: @escaping @Sendable ([Value]) -> Bool) async -> [Value] {
        await withUnsafeContinuation { continuation in
            let ready = state.withLock { state -> [Value]? in
                if predicate(state.values) { return state.values }
                state.waiters.append(Waiter(predicate: predicate, continuation: continuation))
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// Waits until at least `count` values have been recorded, and returns them all.
    @discardableResult
    public func wait(forCount count: Int) async -> [Value] {
        await wait { $0.count >= count }
    }
}
