import Dispatch
import Synchronization

/// Threads for ``AgentContext/offload(_:)``: CPU-bound or blocking work that must not run on Swift's cooperative
/// pool (one thread per core, shared by every agent).
///
/// A set of serial dispatch queues, each job going to the least busy one. Serial queues, unlike a concurrent queue,
/// run on libdispatch's overcommitting threads: measured here, four jobs that each block a thread made a concurrent
/// queue (width-limited to the core count) start the third job only after about three seconds.
final class OffloadPool: Sendable {
    private let queues: [DispatchQueue]
    /// Jobs queued or running on each queue.
    private let busy: Mutex<[Int]>

    init(width: Int) {
        precondition(width > 0, "an offload pool needs at least one thread")
        queues = (0..<width).map { DispatchQueue(label: "troupe.offload.\($0)") }
        busy = Mutex(Array(repeating: 0, count: width))
    }

    func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        let chosen = busy.withLock { busy in
            let index = busy.indices.min { busy[$0] < busy[$1] } ?? 0
            busy[index] += 1
            return index
        }
        return try await withCheckedThrowingContinuation { continuation in
            queues[chosen].async { [self] in
                let result = Result { try work() }
                busy.withLock { $0[chosen] -= 1 }
                continuation.resume(with: result)
            }
        }
    }
}
