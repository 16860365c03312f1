import Foundation
import Synchronization
import Testing
import Troupe
import TroupeHTTPTesting
@testable import TroupePostgres
import TroupeTestKit
import TroupeTestSupport

/// A network namespace joined to this host by a veth pair: `10.123.N.1` on the host's end, `10.123.N.2` inside.
/// Cutting the host's end is a partition: packets are dropped, no connection is reset. Needs root and `ip`.
struct NetworkNamespace: Sendable {
    let name: String
    let index: Int

    var hostInterface: String { "tph\(index)" }
    var insideInterface: String { "tpn\(index)" }
    var hostAddress: String { "10.123.\(index).1" }
    var insideAddress: String { "10.123.\(index).2" }

    static let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// Namespaces can be made here: as root, with iproute2 (`.ci/run` installs it).
    static var available: Bool { getuid() == 0 && ip != nil }

    static func create() async throws -> NetworkNamespace {
        let index = Int.random(in: 1...250)
        let namespace = NetworkNamespace(name: "troupe-test-\(index)-\(getpid())", index: index)
        do {
            try await namespace.ip("netns", "add", namespace.name)
            try await namespace.ip("link", "add", namespace.hostInterface, "type", "veth", "peer", "name", namespace.insideInterface)
            try await namespace.ip("link", "set", namespace.insideInterface, "netns", namespace.name)
            try await namespace.ip("addr", "add", namespace.hostAddress + "/30", "dev", namespace.hostInterface)
            try await namespace.ip("link", "set", namespace.hostInterface, "up")
            try await namespace.ip("netns", "exec", namespace.name, ip!, "addr", "add", namespace.insideAddress + "/30", "dev", namespace.insideInterface)
            try await namespace.ip("netns", "exec", namespace.name, ip!, "link", "set", namespace.insideInterface, "up")
            try await namespace.ip("netns", "exec", namespace.name, ip!, "link", "set", "lo", "up")
        } catch {
            await namespace.remove()
            throw error
        }
        return namespace
    }

    private func ip(_ arguments: String...) async throws {
        let status = try await spawn([Self.ip!] + arguments)
        guard status == 0 else { throw PostgresError(sqlState: "", message: "ip \(arguments.joined(separator: " ")) exited \(status)") }
    }

    /// The partition: the host's end goes down; nothing crosses, nothing is reset.
    func cut() async throws { try await ip("link", "set", hostInterface, "down") }

    func remove() async {
        _ = try? await spawn([Self.ip!, "link", "del", hostInterface])
        _ = try? await spawn([Self.ip!, "netns", "del", name])
    }

    /// `arguments` run inside the namespace.
    func command(_ arguments: [String]) -> [String] { [Self.ip!, "netns", "exec", name] + arguments }

    /// Runs `body` on a thread that entered the namespace: sockets it opens (a listening server) live there.
    func inside<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        let name = name
        return try await blocking {
            typealias SetNS = @convention(c) (Int32, Int32) -> Int32
            guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "setns") else {
                throw PostgresError(sqlState: "", message: "setns is not available")
            }
            let descriptor = open("/var/run/netns/\(name)", O_RDONLY)
            guard descriptor >= 0 else { throw PostgresError(sqlState: "", message: "cannot open namespace \(name)") }
            defer { close(descriptor) }
            guard unsafeBitCast(symbol, to: SetNS.self)(descriptor, 0x4000_0000 /* CLONE_NEWNET */) == 0 else {
                throw PostgresError(sqlState: "", message: "cannot enter namespace \(name): \(String(cString: strerror(errno)))")
            }
            // This thread ends with the call; it never goes back to the host's namespace.
            return try body()
        }
    }
}

/// A worker cut off from the database by a real partition (a network namespace whose link goes down): it fences
/// itself within four heartbeat intervals and sends no HTTP request after (a server inside its namespace counts
/// the requests of a run that fetches without writing), while a worker on the other side takes its runs over and
/// finishes them exactly.
@Suite(
    .enabled(if: NetworkNamespace.available && PrivateServer.enabled, "needs root, iproute2 and PostgreSQL's server programs"),
    .timeLimit(.minutes(4))
)
struct PartitionTests {
    @Test func aPartitionedWorkerFencesItselfAndIsTakenOver() async throws {
        let namespace = try await NetworkNamespace.create()
        do {
            let server = try await PrivateServer(alsoListeningOn: namespace.hostAddress)
            do {
                try await partition(namespace, server)
                await server.stop()
            } catch {
                await server.stop()
                throw error
            }
            await namespace.remove()
        } catch {
            await namespace.remove()
            throw error
        }
    }

    func partition(_ namespace: NetworkNamespace, _ server: PrivateServer) async throws {
        let scratch = try ScratchDirectory("troupe-partition-")
        let workers = WorkerTests()
        let database = TestDatabase(name: "postgres", url: server.url, adminURL: server.url)
        // The quotes server lives inside the namespace: only the worker there can reach it, and it counts requests.
        let requests = Mutex<[Date]>([])
        let quotes = try await namespace.inside {
            try LoopbackServer { request in
                requests.withLock { $0.append(Date()) }
                return .respond(status: 200, headers: [("Content-Type", "application/json")], body: Array(#"[{"symbol":"ACME","price":100}]"#.utf8))
            }
        }
        defer { quotes.close() }
        // Fetches that never touch the database between requests: only the fence stops them.
        let (submitted, said) = try await workers.troupe(
            database, scratch, "run", "fetch-many", "--param", "count=1000000", "--param", "concurrency=2",
            "--param", "base=\(quotes.url(""))", "--detach", "--id", "run-fetch"
        )
        #expect(submitted == 0, "\(said)")
        // 120 batches of 25, 200 ms apart: at least 24 s, so that it is still running at the cut however long the
        // set-up takes on a loaded machine (at 20 ms apart, a CI run once saw it finish before the cut).
        let count = 3000
        try await workers.submit(database, scratch, "run-count", count: count, interval: "200ms")

        // The worker inside the namespace reaches the server through the veth pair.
        let insideURL = "postgres://troupe@\(namespace.hostAddress):\(server.port)/postgres"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: NetworkNamespace.ip!)
        process.arguments = Array(namespace.command([WorkerTests.binary.path, "worker", "--capacity", "5", "--database", insideURL]).dropFirst())
        let log = scratch.file("partitioned.log")
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = handle
        process.standardError = handle
        try await launch(process)
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

        let store = try await PostgresStore(url: server.url)
        try await workers.eventually("the worker inside drives both runs and polls") {
            let runs = try await store.runs()
            return runs.count == 2 && runs.allSatisfy(\.isDriven) && requests.withLock { $0.count } > 5
        }
        let inside = try #require(try await store.runs().first?.owner?.worker)
        let leases = Dictionary(uniqueKeysWithValues: try await store.runs().map { ($0.id, $0.lease ?? 0) })
        let outside = try await workers.start(database, scratch, ["worker", "--capacity", "5"])
        defer { if outside.process.isRunning { kill(outside.process.processIdentifier, SIGKILL) } }
        try await workers.eventually("the second worker registers") { try await store.workers().count == 2 }

        let unfinished = try await store.run("run-count").status
        #expect(unfinished == .running, "the counting run was \(unfinished) before the cut: nothing left to take over")
        let cut = Date()
        try await namespace.cut()
        // Taken over: a new lease epoch, and not the worker inside (a run may have finished on the outside already).
        // Up to 60 s: eviction takes five heartbeats, but the suite's loaded first minute once stretched the
        // takeover past 30 s.
        func takenOver() async throws -> Bool {
            try await store.runs().allSatisfy { $0.owner?.worker != inside && ($0.lease ?? 0) > leases[$0.id] ?? 0 }
        }
        try await workers.eventually("the worker outside takes both runs over", within: .seconds(60)) { try await takenOver() }
        if try await !takenOver() {
            Issue.record("runs: \(try await store.runs()); the worker outside said: \(outside.output.suffix(3_000))")
        }
        let takeover = Date().timeIntervalSince(cut)
        // The cut-off worker went on fetching while cut off, and fenced itself within four heartbeats of its last
        // one (at most a second before the cut): no request after that, however long it stays cut off.
        #expect(requests.withLock { $0.contains { $0.timeIntervalSince(cut) > 1 } }, "no request while cut off: the test saw nothing fence")
        let late = requests.withLock { $0.filter { $0.timeIntervalSince(cut) > 4.5 } }
        #expect(late.isEmpty, "\(late.count) requests from the partitioned worker after it should have fenced itself (takeover after \(takeover) s)")
        let printed = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(printed.contains("self-fence"), "\(printed.suffix(2_000))")

        try await workers.eventually("the counting run completes on the worker outside", within: .seconds(90)) {
            try await store.run("run-count").status == .completed
        }
        let state = try #require(try await workers.counter(store, "run-count"))
        #expect(state.count == count && state.sum == count * (count + 1) / 2 && state.duplicates == 0 && state.gaps == 0, "\(state)")
        #expect(requests.withLock { $0.filter { $0.timeIntervalSince(cut) > 4.5 } }.isEmpty, "the partitioned worker polled again")
        await store.close()
    }
}
