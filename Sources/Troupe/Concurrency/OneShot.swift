import Synchronization

/// A value that is set at most once and can be awaited by any number of tasks.
///
/// Waiting is cancellable: a cancelled waiter returns `nil` promptly instead of hanging, so a `OneShot` can be
/// raced against a deadline in a task group. Continuations are resumed after the lock is released.
package final class OneShot<Value: Sendable>: Sendable {
    private struct State {
        var value: Value?
        var waiters: [UInt64: UnsafeContinuation<Value?, Never>] = [:]
        var nextWaiter: UInt64 = 0
    }

    private let state = Mutex(State())

    package init() {}

    /// The value, if it has been set.
    package var value: Value? { state.withLock { $0.value } }

    /// Sets the value and wakes every waiter. Returns `false` (and changes nothing) if it was already set.
    @discardableResult
    package func fulfill(_ value: Value) -> Bool {
        let waiters: [UnsafeContinuation<Value?, Never>]? = state.withLock { state in
            guard state.value == nil else { return nil }
            state.value = value
            let waiters = Array(state.waiters.values)
            state.waiters = [:]
            return waiters
        }
        guard let waiters else { return false }
        for waiter in waiters { waiter.resume(returning: value) }
        return true
    }

    /// Waits for the value. Returns `nil` if the waiting task is cancelled first.
    package func wait() async -> Value? {
        if let value = self.value { return value }
        let id = state.withLock { state in
            state.nextWaiter &+= 1
            return state.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Value?, Never>) in
                let immediate: Value?? = state.withLock { state in
                    if let value = state.value { return .some(value) }
                    if Task.isCancelled { return .some(nil) }
                    state.waiters[id] = continuation
                    return .none
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume(returning: nil)
        }
    }
}

/// Races `body` against a deadline on `clock`.
///
/// Returns the body's value, or `nil` if the deadline passed first (the body's task is then cancelled, so `body`
/// must return promptly on cancellation). A `nil` deadline waits without limit.
func withDeadline<T: Sendable>(
    _ deadline: Duration?,
    clock: EngineClock,
    _ body: @escaping @Sendable () async -> T?
) async -> T? {
    guard let deadline else { return await body() }
    return await withTaskGroup(of: T?.self) { group in
        group.addTask { await body() }
        group.addTask {
            try? await clock.sleep(for: deadline)
            return nil
        }
        let first = await group.next() ?? nil
        group.cancelAll()
        return first
    }
}
