import Troupe

/// Runs blocking work — waiting for a child process, reading a pipe — on a thread of its own and returns its
/// result.
///
/// Swift's cooperative pool has one thread per core (two on a small CI machine): a test that blocks one of them
/// in `waitUntilExit()` or `readDataToEndOfFile()` stalls every other test's tasks for as long, which shows up as
/// timeouts in unrelated tests. Await the blocking call here instead.
///
/// ```swift
/// let status = await offThePool { process.waitUntilExit(); return process.terminationStatus }
/// ```
public func offThePool<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        if let failure = startThread(named: "troupe-test", { continuation.resume(returning: body()) }) {
            preconditionFailure("offThePool could not start a thread: \(failure)")
        }
    }
}
