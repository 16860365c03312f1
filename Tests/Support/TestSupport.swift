public import Foundation
public import Testing
import TroupeTestKit

/// Waits off the cooperative pool for `process` to exit, for at most `limit`. A process still running then is
/// killed with `SIGKILL` and the test records an issue naming it: a process that never ends fails its test instead
/// of hanging the suite.
public func waitForExit(
    _ process: Process,
    within limit: Duration = .seconds(90),
    sourceLocation: SourceLocation = #_sourceLocation
) async {
    let watchdog = watch(process, for: limit, sourceLocation: sourceLocation)
    await offThePool { process.waitUntilExit() }
    watchdog.cancel()
}

/// Kills `process` with `SIGKILL`, recording an issue, if it still runs after `limit`; cancel the task once it has
/// ended. Start it before reading a process's output to its end, which would otherwise wait as long as it runs.
public func watch(_ process: Process, for limit: Duration, sourceLocation: SourceLocation = #_sourceLocation) -> Task<Void, any Error> {
    Task {
        try await Task.sleep(for: limit)
        guard process.isRunning else { return }
        let arguments = (process.arguments ?? []).joined(separator: " ")
        Issue.record("process \(process.processIdentifier) (\(arguments)) was still running after \(limit); killed it", sourceLocation: sourceLocation)
        kill(process.processIdentifier, SIGKILL)
    }
}

/// A fresh directory under the system's temporary directory, removed with everything in it when the last
/// reference goes (hold it in the suite, or keep it alive to the end of the test with `withExtendedLifetime`).
public final class ScratchDirectory: Sendable {
    /// The directory's path.
    public let path: String

    /// Creates the directory, named `prefix` followed by a UUID.
    public init(_ prefix: String) throws {
        path = NSTemporaryDirectory() + prefix + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// The path of `name` inside the directory.
    public func file(_ name: String) -> String { path + "/" + name }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}
