import Foundation
import Testing
import TroupeTestSupport
import Troupe
import TroupeSQLite
import TroupeTestKit

/// Every verb × its arguments and options × classes of malformed values, against the `troupe` binary: nothing
/// crashes, every exit code is a documented one, and the database is left exactly as it was.
@Suite(.timeLimit(.minutes(6)))
struct FuzzTests: CLIHarness {
    /// The suite instance's own directory, removed with the instance when its test ends.
    let scratch: ScratchDirectory
    var database: String { scratch.file("troupe.db") }

    init() throws { scratch = try ScratchDirectory("troupe-cli-") }

    /// Command lines with one slot (`§`) for a bad value; a run `run-a` (agent `counter`, one checkpoint, one dead
    /// letter) exists.
    static let templates: [[String]] = [
        ["run", "§"], ["run", "counting", "--param", "§"], ["run", "counting", "--param", "count=§"],
        ["run", "counting", "--param", "interval=§"], ["run", "counting", "--id", "§"],
        ["run", "counting", "--durability", "§"], ["run", "counting", "--detach", "--id", "§"],
        ["ps", "--busy-timeout", "§"], ["ps", "--retain", "§"], ["ps", "--log-level", "§"], ["ps", "§"],
        ["tree", "§"], ["status", "§"], ["events", "§"], ["events", "run-a", "--since", "§"],
        ["events", "run-a", "--agent", "§"], ["cancel", "§"], ["cancel", "run-a", "--grace", "§"],
        ["cancel", "run-a", "§"], ["restart", "run-a", "§"], ["restart", "§", "counter"], ["pause", "§"],
        ["unpause", "§"], ["resume", "§"], ["checkpoints", "run-a", "§"], ["checkpoints", "run-a", "counter", "--show", "§"],
        ["checkpoints", "§", "counter"], ["fork", "run-a", "--from", "§"], ["fork", "§", "--from", "counter@1"],
        ["dead-letters", "§"], ["dead-letters", "run-a", "§"], ["dead-letters", "run-a", "requeue", "--id", "§"],
        ["dead-letters", "run-a", "purge", "--id", "§"], ["prune", "--keep", "§"], ["prune", "--events-older-than", "§"],
        ["prune", "--runs-older-than", "§"], ["prune", "--runs-older-than", "1d", "--status", "§"], ["rm", "§"],
        ["db", "§"], ["blueprints", "§"],
    ]

    static let values = [
        "", "-1", "0", "99999999999999999999", "inf", "nan", "1e300", "ünïcödé ✓", "'; DROP TABLE runs; --",
        "../../../etc/passwd", "nosuch", "x=y=z", "\"quoted\"",
    ]

    /// Values that are valid in a slot and would start real work there (a foreground run with a valid `--id`, or
    /// counting without a pause).
    static func starts(_ template: [String], _ value: String) -> Bool {
        template.first == "run" && (template.contains("--id") && isRunID(value) || template.last == "interval=§" && value == "0")
    }

    /// Whether `value` is a well-formed run id (which `run --id` accepts, starting a real run).
    static func isRunID(_ value: String) -> Bool {
        guard let first = value.unicodeScalars.first, value.count <= 64, first.properties.isASCIIHexDigit || ("a"..."z").contains(first) || ("A"..."Z").contains(first) else {
            return false
        }
        return value.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || ".-_".unicodeScalars.contains($0)) }
    }

    /// The database's whole content, as SQL text.
    func dump() async throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", "-c",
            "import sqlite3,sys; c=sqlite3.connect('file:'+sys.argv[1]+'?mode=ro', uri=True); print('\\n'.join(c.iterdump()))",
            database,
        ]
        let output = await makePipe()
        process.standardOutput = output
        try await launch(process)
        let data = await offThePool { output.fileHandleForReading.readDataToEndOfFile() }
        await waitForExit(process)
        return String(decoding: data, as: UTF8.self)
    }

    @Test func malformedInputNeverCrashesNeverLiesAndChangesNothing() async throws {
        let store = try await SQLiteStore(path: database)
        let id: RunID = "run-a"
        let agent = AgentID(run: id, name: "counter")
        _ = try await store.attach(RunRecord(id: id, blueprint: "counting", agents: ["counter"]))
        let claim = try await store.claim(agent, type: "Counter", durability: .durable, incarnation: 1)
        _ = try await store.commit(Commit(run: id, agent: agent, epoch: claim.epoch, checkpoint: Checkpoint(agent: agent, epoch: claim.epoch, sequence: 1, stateVersion: 1, state: Array("{}".utf8))))
        try await store.deadLetter(DeadLetter(agent: agent, message: [1], error: "poison", failures: 3))
        await store.detach(id, outcome: .stopped, error: nil)
        await store.close()
        let before = try await dump()

        let documented: Set<Int32> = [0, 1, 3, 64, 65, 66, 75]
        var cases: [[String]] = []
        for template in Self.templates {
            for value in Self.values where !Self.starts(template, value) {
                cases.append(template.map { $0 == "§" ? value : $0 } + ["--database", database])
            }
        }
        // Four at a time, in the background: hundreds of processes with no deadline of their own, which would
        // otherwise take the CPU from the suite's tests that have one. Each process's waits happen off the pool.
        var failures: [String] = []
        var index = 0
        while index < cases.count {
            let chunk = cases[index..<min(index + 4, cases.count)]
            index += chunk.count
            let results = try await withThrowingTaskGroup(of: ([String], Troupe.Result).self) { group in
                for arguments in chunk { group.addTask { (arguments, try await Troupe.run(arguments: arguments, background: true)) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            for (arguments, result) in results {
                let shown = arguments.dropLast(2).map { $0.isEmpty ? "''" : $0 }.joined(separator: " ")
                if !documented.contains(result.status) {
                    failures.append("`\(shown)` exited \(result.status): \(result.stderr.prefix(300))")
                }
                if result.stderr.contains("Fatal error") || result.stderr.contains("Stack dump") || result.stderr.contains("Backtrace") {
                    failures.append("`\(shown)` crashed: \(result.stderr.prefix(300))")
                }
                if result.status != 0, result.stderr.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                    failures.append("`\(shown)` failed (\(result.status)) without saying why")
                }
            }
        }
        let report = "\(failures.count) of \(cases.count) cases:\n" + failures.prefix(30).joined(separator: "\n")
        #expect(failures.isEmpty, "\(report)")
        let after = try await dump()
        #expect(after == before, "the database changed")
    }
}
