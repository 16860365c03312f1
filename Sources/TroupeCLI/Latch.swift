import Synchronization

/// A value that is set once and awaited; waiting ends early (with `nil`) when the waiting task is cancelled.
package final class Latch<Value: Sendable>: Sendable {
    package init() {}

    private let state = Mutex<(value: Value?, waiters: [UInt64: CheckedContinuation<Value?, Never>], next: UInt64)>(
        (nil, [:], 0)
    )

    package func open(with value: Value) {
        let waiters = state.withLock { state -> [CheckedContinuation<Value?, Never>] in
            guard state.value == nil else { return [] }
            state.value = value
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume(returning: value) }
    }

    package func wait() async -> Value? {
        let id = state.withLock { state in
            state.next += 1
            return state.next
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let ready = state.withLock { state -> Value?? in
                    if let value = state.value { return .some(value) }
                    if Task.isCancelled { return .some(nil) }
                    state.waiters[id] = continuation
                    return .none
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(returning: nil)
        }
    }
}
