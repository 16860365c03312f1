public import Foundation
public import Testing
import TroupeTestKit

/// Kills the crash pipeline (`Tests/CrashPipeline`) with SIGKILL at random moments while it counts, starting it
/// again on the same database each time (which resumes the run), then lets it finish.
public enum CrashLoop {
    /// The `CrashPipeline` executable, next to the test runner.
    public static let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        .appendingPathComponent("CrashPipeline")

    /// The counter's state as the pipeline checkpoints it.
    public struct CounterState: Decodable, Sendable {
        public var count: Int
        public var sum: Int
        public var duplicates: Int
        public var gaps: Int
    }

    static func start(_ database: String, run: String, count: Int) async throws -> (Process, Pipe) {
        let process = Process()
        process.executableURL = binary
        process.arguments = [database, run, String(count)]
        let output = await makePipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try await launch(process)
        return (process, output)
    }

    /// How long the last start, which runs the pipeline to its end, may take.
    public static let finalLimit = Duration.seconds(150)

    /// Starts and kills the pipeline up to `rounds` times, each kill `delay` (random, in milliseconds) after it
    /// took the run's lease, then runs it to the end.
    ///
    /// - Returns: How many times it was killed while running.
    public static func run(
        database: String,
        run: String,
        count: Int,
        rounds: Int,
        delay: ClosedRange<Int> = 30...400,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> Int {
        var generator = SystemRandomNumberGenerator()
        var kills = 0
        for _ in 0..<rounds {
            let (process, output) = try await start(database, run: run, count: count)
            // Kill only once it holds the lease (a loaded machine can take longer than the random delay to start):
            // every kill is then a crash of a run in progress, and each start counts as one owner.
            let reader = output.fileHandleForReading
            _ = await offThePool {
                var said = Data()
                while !String(decoding: said, as: UTF8.self).contains("\n") {
                    let chunk = reader.availableData
                    if chunk.isEmpty { break }
                    said.append(chunk)
                }
                return said
            }
            try await Task.sleep(for: .milliseconds(Int.random(in: delay, using: &generator)))
            guard process.isRunning else {
                await waitForExit(process, sourceLocation: sourceLocation)
                #expect(process.terminationStatus == 0, sourceLocation: sourceLocation)
                break
            }
            kill(process.processIdentifier, SIGKILL)
            await waitForExit(process, sourceLocation: sourceLocation)
            kills += 1
        }
        // Resume until done, with no more kills. Bounded: a pipeline that stops making progress fails the test
        // (its process killed, so that reading its output ends) instead of holding the suite until CI's limit.
        let (process, output) = try await start(database, run: run, count: count)
        let watchdog = watch(process, for: finalLimit, sourceLocation: sourceLocation)
        let printed = await offThePool { output.fileHandleForReading.readDataToEndOfFile() }
        watchdog.cancel()
        await waitForExit(process, sourceLocation: sourceLocation)
        #expect(process.terminationStatus == 0, sourceLocation: sourceLocation)
        #expect(String(decoding: printed, as: UTF8.self).contains("complete"), sourceLocation: sourceLocation)
        return kills
    }
}
