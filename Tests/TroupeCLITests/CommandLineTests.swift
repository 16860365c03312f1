import Foundation
import Testing
import TroupeTestSupport
import TroupeTestKit

/// Runs the built `troupe` binary as an operator would.
struct Troupe {
    static let binary: URL = {
        // The test runner lives in the build's products folder, next to the `troupe` executable.
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("troupe")
    }()

    typealias Result = ProcessOutput

    static func run(_ arguments: String...) async throws -> Result {
        try await run(arguments: arguments)
    }

    /// Runs the binary to its end; every blocking wait happens off the cooperative pool. `background` runs it at
    /// a lower priority (`nice -n 10`): for work in bulk with no deadline of its own, which then takes no CPU from
    /// the tests that wait on a deadline.
    static func run(arguments: [String], background: Bool = false) async throws -> Result {
        let process = Process()
        if background {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/nice")
            process.arguments = ["-n", "10", binary.path] + arguments
        } else {
            process.executableURL = binary
            process.arguments = arguments
        }
        return try await runToEnd(process, within: background ? .seconds(180) : .seconds(90))
    }
}

/// A database path in a fresh temporary directory.
/// A suite that drives the `troupe` binary against its own database.
protocol CLIHarness {
    var database: String { get }
}

extension CLIHarness {
    /// Runs `troupe ARGS --database DB` and returns its result.
    func troupe(_ arguments: String...) async throws -> Troupe.Result {
        try await troupe(arguments)
    }

    /// Runs `troupe ARGS --database DB` and returns its result.
    func troupe(_ arguments: [String]) async throws -> Troupe.Result {
        try await Troupe.run(arguments: arguments + ["--database", database])
    }

    /// Runs `troupe ARGS --database DB --json`, expects success, and parses its output.
    func json(_ arguments: String...) async throws -> Any {
        let result = try await Troupe.run(arguments: arguments + ["--database", database, "--json"])
        #expect(result.status == 0, "\(arguments): \(result.stderr)")
        return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8))
    }

    /// Polls `condition` (see ``poll(within:_:)``) for up to `limit` seconds.
    func eventually(_ what: String, within limit: TimeInterval = 60, _ condition: () async throws -> Bool) async throws {
        if try await !poll(within: .seconds(limit), condition) { Issue.record("timed out waiting for \(what)") }
    }
}

// Each test runs the binary many times; on CI's loaded machine a run of `troupe` took seconds (one test needed 77 s).
@Suite(.timeLimit(.minutes(3)))
struct CommandLineTests {
    @Test func helpListsTheVerbsAndTheExitCodes() async throws {
        let result = try await Troupe.run("--help")
        #expect(result.status == 0)
        #expect(result.stdout.contains("OVERVIEW: Run and steer durable multi-agent runs."))
        #expect(result.stdout.contains("demo                    Run the demo tree"))
        for verb in ["run", "ps", "tree", "status", "events", "cancel", "restart", "send", "wait", "pause", "unpause", "resume",
                     "checkpoints", "fork", "dead-letters", "prune", "blueprints", "db", "version"] {
            #expect(result.stdout.contains("\n  \(verb) "), "--help does not list '\(verb)'")
        }
        for line in ["0   success", "64  usage error", "65  bad data", "66  not found", "75  temporary failure"] {
            #expect(result.stdout.contains(line), "missing '\(line)'")
        }
    }

    @Test func theReadmeShowsTheHelpExactlyAsTheBinaryPrintsIt() async throws {
        let readme = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../README.md")
        let text = try String(contentsOf: readme, encoding: .utf8)
        let marker = "$ swift run troupe --help\n"
        let start = try #require(text.range(of: marker)).upperBound
        let end = try #require(text.range(of: "```", range: start..<text.endIndex)).lowerBound
        let result = try await Troupe.run("--help")
        #expect(String(text[start..<end]) == result.stdout)
    }

    @Test func versionPrintsTheRelease() async throws {
        let result = try await Troupe.run("version")
        #expect(result.status == 0)
        #expect(result.stdout == "troupe 0.1.0\n")
    }

    @Test func usageErrorsExitWith64() async throws {
        let result = try await Troupe.run("frobnicate")
        #expect(result.status == 64)
        #expect(result.stderr.contains("Unexpected argument 'frobnicate'"))
        #expect(result.stdout.isEmpty)
    }

    /// The options every verb shares work before the verb too; a verb or a blueprint spelled nearly right gets
    /// a suggestion (exit 64 and 66, as before).
    @Test func sharedOptionsGoBeforeTheVerbAndTyposGetASuggestion() async throws {
        let scratch = try ScratchDirectory("troupe-cli-")
        defer { withExtendedLifetime(scratch) {} }
        let database = scratch.file("troupe.db")
        #expect(try await Troupe.run("run", "demo", "--database", database).status == 0)
        let after = try await Troupe.run("ps", "--database", database, "--json")
        let before = try await Troupe.run("--database", database, "--json", "ps")
        let mixed = try await Troupe.run("--json", "ps", "--database=\(database)")
        #expect(after.status == 0 && before.status == 0 && mixed.status == 0, "\(before.stderr) \(mixed.stderr)")
        #expect(before.stdout == after.stdout && mixed.stdout == after.stdout && after.stdout.contains("\"demo\""))
        let verb = try await Troupe.run("--database", database, "rsume", "x")
        #expect(verb.status == 64 && verb.stderr.contains("did you mean 'resume'?"), "\(verb.stderr)")
        let blueprint = try await Troupe.run("run", "demp", "--database", database)
        #expect(blueprint.status == 66 && blueprint.stderr.contains("Did you mean 'demo'?"), "\(blueprint.stderr)")
        #expect(try await Troupe.run("frobnicate").stderr.contains("did you mean") == false)
    }

    @Test func theDemoRestartsTheCrashedAgentAndCountsEveryItemOnce() async throws {
        let scratch = try ScratchDirectory("troupe-cli-")
        defer { withExtendedLifetime(scratch) {} }
        let database = scratch.file("troupe.db")
        let result = try await Troupe.run("demo", "--json", "--database", database)
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        let records = try lines.map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] ?? [:] }
        let summary = try #require(records.last)
        #expect(summary["type"] as? String == "summary")
        #expect(summary["exactlyOnce"] as? Bool == true)
        #expect(summary["sum"] as? Int == 999_000)
        #expect(summary["gatherResults"] as? Int == 7)
        #expect((summary["gatherErrors"] as? [String])?.count == 3)
        #expect(summary["restarts"] as? [String] == ["transformer", "producer"])
        let crashes = records.filter { $0["event"] as? String == "crashed" }
        #expect(crashes.count == 1)
        #expect(crashes.first?["agent"] as? String == "transformer")
        #expect(crashes.first?["detail"] as? String == "injected fault on batch 3")
        // Every agent did its share and ended: the run completed on its own, and the monitor polled its five times.
        #expect(summary["monitorPolls"] as? Int == 5)
        let ps = try await Troupe.run("ps", "--json", "--database", database)
        let runs = try JSONSerialization.jsonObject(with: Data(ps.stdout.utf8)) as? [[String: Any]] ?? []
        #expect(runs.first?["status"] as? String == "completed", "\(ps.stdout)")
    }

    @Test func theDemoPrintsReadableLinesOnATerminal() async throws {
        let scratch = try ScratchDirectory("troupe-cli-")
        defer { withExtendedLifetime(scratch) {} }
        let database = scratch.file("troupe.db")
        let result = try await Troupe.run("demo", "--database", database)
        #expect(result.status == 0)
        #expect(result.stdout.contains("database \(database)"))
        #expect(result.stdout.contains("transformer#1    crashed     injected fault on batch 3"))
        #expect(result.stdout.contains("transformer#2    restarting"))
        #expect(result.stdout.contains("every item exactly once"))
    }

    @Test func aFileThatIsNotADatabaseIsRefusedWithExitCode65() async throws {
        let scratch = try ScratchDirectory("troupe-cli-")
        defer { withExtendedLifetime(scratch) {} }
        let database = scratch.file("troupe.db")
        let notes = Data("my shopping list\n".utf8)
        _ = FileManager.default.createFile(atPath: database, contents: notes)
        let result = try await Troupe.run("demo", "--database", database)
        #expect(result.status == 65)
        #expect(result.stderr.contains("is not a SQLite database"))
        #expect(result.stderr.contains("--database"))
        #expect(FileManager.default.contents(atPath: database) == notes)
    }
}
