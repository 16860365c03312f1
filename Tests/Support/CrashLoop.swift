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

    /// A start of the pipeline: its process, its output, and a file its standard error goes to (the engine's
    /// log, and why a run ended early).
    struct Started {
        let process: Process
        let output: Pipe
        let errorLog: String

        /// What the process wrote to standard error, its last 4,000 characters.
        var errors: String { String(((try? String(contentsOfFile: errorLog, encoding: .utf8)) ?? "").suffix(4000)) }

        /// Whether the run stopped because this process lost the run's lease (it fenced itself: its heartbeat
        /// stalled past 4 s on a loaded machine, see the README's self-fence). A resume goes on from its last commit.
        var lostItsLease: Bool { process.terminationStatus == 1 && errors.contains("its lease was lost") }
    }

    static func start(_ database: String, run: String, count: Int, in scratch: ScratchDirectory) async throws -> Started {
        let process = Process()
        process.executableURL = binary
        process.arguments = [database, run, String(count)]
        let output = await makePipe()
        process.standardOutput = output
        let errorLog = scratch.file(UUID().uuidString + ".stderr")
        _ = FileManager.default.createFile(atPath: errorLog, contents: nil)
        let errors = try FileHandle(forWritingTo: URL(fileURLWithPath: errorLog))
        process.standardError = errors
        try await launch(process)
        try errors.close()
        return Started(process: process, output: output, errorLog: errorLog)
    }

    /// How long the last start, which runs the pipeline to its end, may take.
    public static let finalLimit = Duration.seconds(150)

    /// What ``run(database:run:count:rounds:delay:sourceLocation:)`` did.
    public struct Outcome: Sendable {
        /// How many times the pipeline was killed while running.
        public var kills = 0
        /// How many starts took the run's lease: each is one owner, one lease token.
        public var owners = 0
    }

    /// Starts and kills the pipeline up to `rounds` times, each kill `delay` (random, in milliseconds) after it
    /// took the run's lease, then runs it to the end.
    ///
    /// A start that lost the lease by itself (a self-fence, when a loaded machine stalled its heartbeat for 4 s)
    /// ended its run without finishing it, as documented; the next start resumes it, as after a kill. Any other
    /// early end fails the test, with what the process wrote to standard error.
    public static func run(
        database: String,
        run: String,
        count: Int,
        rounds: Int,
        delay: ClosedRange<Int> = 30...400,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> Outcome {
        let scratch = try ScratchDirectory("troupe-crashloop-")
        var generator = SystemRandomNumberGenerator()
        var outcome = Outcome()
        for _ in 0..<rounds {
            let started = try await start(database, run: run, count: count, in: scratch)
            let process = started.process
            // Kill only once it holds the lease (a loaded machine can take longer than the random delay to start):
            // every kill is then a crash of a run in progress, and each start counts as one owner.
            let reader = started.output.fileHandleForReading
            let first = await offThePool {
                var said = Data()
                while !String(decoding: said, as: UTF8.self).contains("\n") {
                    let chunk = reader.availableData
                    if chunk.isEmpty { break }
                    said.append(chunk)
                }
                return said
            }
            if String(decoding: first, as: UTF8.self).contains("attached") { outcome.owners += 1 }
            try await Task.sleep(for: .milliseconds(Int.random(in: delay, using: &generator)))
            guard process.isRunning else {
                await waitForExit(process, sourceLocation: sourceLocation)
                if started.lostItsLease { continue }
                #expect(process.terminationStatus == 0, "standard error: \(started.errors)", sourceLocation: sourceLocation)
                break
            }
            kill(process.processIdentifier, SIGKILL)
            await waitForExit(process, sourceLocation: sourceLocation)
            outcome.kills += 1
        }
        // Resume until done, with no more kills. Bounded: a pipeline that stops making progress fails the test
        // (its process killed, so that reading its output ends) instead of holding the suite until CI's limit.
        for attempt in 1...3 {
            let started = try await start(database, run: run, count: count, in: scratch)
            let process = started.process
            let watchdog = watch(process, for: finalLimit, sourceLocation: sourceLocation)
            let printed = String(decoding: await offThePool { started.output.fileHandleForReading.readDataToEndOfFile() }, as: UTF8.self)
            watchdog.cancel()
            await waitForExit(process, sourceLocation: sourceLocation)
            // A start that finds the counter complete says so without taking the lease.
            if printed.contains("attached") { outcome.owners += 1 }
            if started.lostItsLease, attempt < 3 { continue }
            let said = "standard output: \(printed)\nstandard error: \(started.errors)"
            #expect(process.terminationStatus == 0, "\(said)", sourceLocation: sourceLocation)
            #expect(printed.contains("complete"), "\(said)", sourceLocation: sourceLocation)
            break
        }
        return outcome
    }
}
