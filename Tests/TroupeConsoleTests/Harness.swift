import Foundation
import Glibc
import Testing
import TroupeHTTP
import TroupeTestKit
import TroupeTestSupport

/// The `troupe` binary next to the test runner, run against one scratch database.
struct Operator: Sendable {
    static let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("troupe")

    let scratch: ScratchDirectory
    var database: String { scratch.file("troupe.db") }

    init() throws {
        scratch = try ScratchDirectory("troupe-console-")
    }

    typealias Result = ProcessOutput

    /// Runs `troupe ARGS --database DB` to its end.
    func troupe(_ arguments: String...) async throws -> Result {
        try await run(arguments)
    }

    /// `troupe ARGS --database DB --json`, expected to succeed, parsed.
    func json(_ arguments: String...) async throws -> Any {
        let result = try await run(arguments + ["--json"])
        try #require(result.status == 0, "troupe \(arguments.joined(separator: " ")): \(result.stderr)")
        return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8))
    }

    func process(_ arguments: [String]) -> Process {
        let process = Process()
        process.executableURL = Self.binary
        process.arguments = arguments + ["--database", database]
        process.currentDirectoryURL = URL(fileURLWithPath: scratch.path)
        return process
    }

    func run(_ arguments: [String]) async throws -> Result {
        try await runToEnd(process(arguments))
    }

    /// Starts `blueprint` in the background; returns its run id and the pid of the process driving it.
    func start(_ blueprint: String, _ parameters: String...) async throws -> (run: String, pid: Int32) {
        let result = try await run(["run", blueprint, "--detach", "--json"] + parameters.flatMap { ["--param", $0] })
        try #require(result.status == 0, "troupe run \(blueprint) --detach: \(result.stderr)")
        let document = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let run = try #require(document["run"] as? String)
        let pid = try #require((document["pid"] as? String).flatMap { Int32($0) } ?? (document["pid"] as? Int).map(Int32.init))
        return (run, pid)
    }

    /// Polls `condition` until it holds, for at most `limit`.
    func eventually(
        _ what: String,
        within limit: Duration = .seconds(60),
        sourceLocation: SourceLocation = #_sourceLocation,
        _ condition: () async throws -> Bool
    ) async throws {
        if try await poll(within: limit, condition) { return }
        Issue.record("\(what): still not so after \(limit)", sourceLocation: sourceLocation)
        throw CancellationError()
    }
}

/// `troupe serve` on a free port, stopped with SIGTERM (it must exit 0).
final class Console: Sendable {
    let process: Process
    let base: String
    let client = HTTPClient(configuration: .init(retry: .never))
    /// Where its standard error goes, for the messages of a failed stop.
    let errors: String

    init(_ troupe: Operator, _ options: String...) async throws {
        process = troupe.process(["serve", "--port", "0", "--log-level", "debug"] + options)
        let out = await makePipe()
        process.standardOutput = out
        errors = troupe.scratch.file("serve-\(UUID().uuidString.prefix(8)).log")
        _ = FileManager.default.createFile(atPath: errors, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: errors))
        process.standardError = handle
        try await launch(process)
        try handle.close()
        // Its first line names the address: "troupe: console on http://127.0.0.1:PORT/ (…)".
        let line = await readLine(from: out.fileHandleForReading.fileDescriptor)
        guard let start = line.range(of: "http://"), let end = line[start.upperBound...].firstIndex(of: " ") else {
            process.terminate()
            throw ConsoleFailure(description: "troupe serve printed no address: '\(line)'")
        }
        base = String(line[start.lowerBound..<end]).trimmingCharacters(in: CharacterSet(charactersIn: "/"))
    }

    struct ConsoleFailure: Error, CustomStringConvertible { var description: String }

    /// A request; an error status comes back as a response, not a throw.
    func request(
        _ path: String,
        method: String = "GET",
        headers: [(name: String, value: String)] = [],
        body: [UInt8]? = nil
    ) async throws -> HTTPResponse {
        do {
            return try await client.execute(
                HTTPRequest(method: method, url: base + path, headers: headers, body: body, timeout: .seconds(30), maxRedirects: 0)
            )
        } catch let error as HTTPClientError where error.status != nil {
            return HTTPResponse(status: error.status!, headers: [], body: Array(error.message.utf8))
        }
    }

    /// An action as the console's page sends it.
    func act(_ path: String, body: String? = nil) async throws -> HTTPResponse {
        try await request(path, method: "POST", headers: [("X-Troupe", "action")], body: body.map { Array($0.utf8) })
    }

    func json(_ path: String) async throws -> Any {
        let response = try await request(path)
        try #require(response.status == 200, "GET \(path): \(response.status) \(response.text)")
        return try JSONSerialization.jsonObject(with: Data(response.body))
    }

    /// Stops the console gracefully; it must exit 0.
    func stop() async {
        client.shutdown()
        process.terminate()
        await waitForExit(process, within: .seconds(30))
        #expect(
            process.terminationStatus == 0,
            "troupe serve exited \(process.terminationStatus) on SIGTERM; it said: \((try? String(contentsOfFile: errors, encoding: .utf8)) ?? "")"
        )
    }
}
