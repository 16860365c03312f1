public import Troupe

/// Runs `body` while `run` runs, then shuts the run down gracefully and waits for it to end.
///
/// If `body` throws, the run is still shut down, and the body's error is rethrown.
///
/// ```swift
/// let total = try await withRunning(run) {
///     try await run.send(Counter.Message.add(2), to: "counter")
///     return try await run.call("counter", timeout: .seconds(1)) { Counter.Message.total($0) }
/// }
/// ```
///
/// - Throws: The body's error, or the run's (an escalation, for instance).
@discardableResult
public func withRunning<T>(_ run: Run, _ body: () async throws -> T) async throws -> T {
    let task = Task { try await run.run() }
    do {
        let result = try await body()
        run.shutdown()
        try await task.value
        return result
    } catch {
        run.shutdown()
        _ = try? await task.value
        throw error
    }
}
