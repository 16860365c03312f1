import Foundation
import Testing
import TroupeTestSupport
import Troupe
import TroupeTestKit
import TroupeSQLite

/// Kills a durable counting pipeline with SIGKILL at random moments, resumes it each time, and checks that every
/// number was counted exactly once.
@Suite(.timeLimit(.minutes(5)))
struct CrashTests {
    static let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        .appendingPathComponent("CrashPipeline")

    struct CounterState: Decodable {
        var count: Int
        var sum: Int
        var duplicates: Int
        var gaps: Int
    }

    func start(_ database: String, count: Int) throws -> (Process, Pipe) {
        let process = Process()
        process.executableURL = Self.binary
        process.arguments = [database, "run-crash", String(count)]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        return (process, output)
    }

    @Test func killNineAtRandomMomentsLosesNothingAndCountsNothingTwice() async throws {
        let directory = try TemporaryDirectory()
        let database = directory.file()
        let count = 200_000
        var generator = SystemRandomNumberGenerator()
        var kills = 0
        for _ in 0..<15 {
            let (process, output) = try start(database, count: count)
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
            try await Task.sleep(for: .milliseconds(Int.random(in: 30...400, using: &generator)))
            guard process.isRunning else {
                await waitForExit(process)
                #expect(process.terminationStatus == 0)
                break
            }
            kill(process.processIdentifier, SIGKILL)
            await waitForExit(process)
            kills += 1
        }
        // Resume until done, with no more kills.
        let (process, output) = try start(database, count: count)
        let printed = await offThePool { output.fileHandleForReading.readDataToEndOfFile() }
        await waitForExit(process)
        #expect(process.terminationStatus == 0)
        #expect(String(decoding: printed, as: UTF8.self).contains("complete"))
        #expect(kills >= 3, "the pipeline finished before it could be killed a few times; raise the count")

        try await withStore(database) { store in
            let last = try #require(try await store.checkpoints(of: AgentID(run: "run-crash", name: "counter")).last)
            let state = try JSONDecoder().decode(CounterState.self, from: Data(last.state))
            #expect(state.count == count)
            #expect(state.sum == count * (count + 1) / 2)
            #expect(state.duplicates == 0)
            #expect(state.gaps == 0)
            #expect(try await store.pendingMessages(of: "run-crash").isEmpty)
            #expect(try await store.read { try $0.texts("PRAGMA integrity_check") } == ["ok"])
            let resumes = try await store.read { try $0.scalar("SELECT lease_token FROM runs WHERE id = 'run-crash'") }
            #expect(resumes == Int64(kills + 1))
        }
    }
}
