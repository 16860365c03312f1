// The PostgreSQL figures (`troupe-bench postgres`), with the same run's SQLite figures beside them.
//
// Needs `TROUPE_BENCH_POSTGRES=postgres://USER@127.0.0.1:PORT/DATABASE`, a server on loopback whose user may
// create databases: every figure uses a database of its own, dropped afterwards. Workers are child processes of
// this binary running `troupe worker` with the bench's `ticking` blueprint.
import Foundation
import Troupe
import TroupeCLI
import TroupePostgres
import TroupeSQLite

#if canImport(Glibc)
import Glibc
#endif

enum PostgresBench {
    static let server = ProcessInfo.processInfo.environment["TROUPE_BENCH_POSTGRES"].flatMap { $0.isEmpty ? nil : $0 }

    /// A new database on the server, and how to drop it.
    static func database() throws -> (url: String, drop: @Sendable () -> Void) {
        guard let server else { throw BenchError("TROUPE_BENCH_POSTGRES is not set") }
        let name = "troupe_bench_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        try PGConnection(url: server).execute("CREATE DATABASE \(name)")
        return (PGConnection.url(server, database: name), {
            try? PGConnection(url: server).execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
        })
    }

    static func run() async throws {
        guard server != nil else {
            FileHandle.standardError.write(Data("troupe-bench: postgres figures skipped: set TROUPE_BENCH_POSTGRES to a server URL\n".utf8))
            return
        }
        // The same run's SQLite figures, for comparison.
        try await checkpointThroughput(agents: 1_000, perAgent: 200, sync: false)
        try await checkpointThroughput(agents: 1_000, perAgent: 100, sync: true)
        try await checkpointThroughput(agents: 1, perAgent: 2_000, sync: true)

        try await checkpoints(agents: 1_000, perAgent: 100, sync: false)
        try await checkpoints(agents: 1_000, perAgent: 50, sync: true)
        try await checkpoints(agents: 1, perAgent: 2_000, sync: false)
        try await checkpoints(agents: 1, perAgent: 2_000, sync: true)
        try await fleetCommits(workers: 4, agents: 250, perAgent: 200)
        try await takeover(runs: 100, agents: 10)
        try await partitionTakeover(runs: 100, agents: 10)
        try await idleWorker(seconds: 10)
    }

    // MARK: Commits

    /// Checkpoints/s of `agents` loop agents in this process, group-committed by one store.
    static func checkpoints(agents: Int, perAgent: Int, sync: Bool) async throws {
        let database = try database()
        defer { database.drop() }
        let store = try await PostgresStore(url: database.url, configuration: .init(syncEveryCommit: sync))
        let done = Countdown(agents)
        let blueprint = Blueprint("checkpoints", durability: .checkpointed) {
            for index in 0..<agents {
                Child("writer-\(index)", CheckpointWriter(count: perAgent, done: done), restart: .temporary)
            }
        }
        let elapsed = try await secondsUntil(done, running: blueprint, on: store)
        await store.close()
        let name = agents == 1 ? "postgres_checkpoints_1agent_per_txn" : "postgres_checkpoints_\(agents)agents"
        report("\(name)_\(sync ? "full" : "normal")", Double(agents * perAgent) / elapsed, "checkpoints/s")
    }

    /// Durable commits/s of `workers` processes committing together to one database (synchronous commit).
    static func fleetCommits(workers: Int, agents: Int, perAgent: Int) async throws {
        let database = try database()
        defer { database.drop() }
        // Migrate once, before the processes race to.
        await (try PostgresStore(url: database.url)).close()
        let children = try (0..<workers).map { _ in
            try ChildProcess.start(environment: ["TROUPE_BENCH_CHILD": "commits"], arguments: [database.url, String(agents), String(perAgent)])
        }
        for child in children { _ = try child.line() }  // "ready"
        for child in children { child.say("go") }
        var slowest = 0.0
        for child in children {
            let line = try child.line()
            guard let elapsed = Double(line) else { throw BenchError("a committing process said '\(line)'") }
            slowest = max(slowest, elapsed)
            child.process.waitUntilExit()
        }
        report("postgres_commits_\(workers)workers_batched_full", Double(workers * agents * perAgent) / slowest, "commits/s")
    }

    /// The committing child process: `agents` loop agents, `perAgent` checkpoints each, after "go".
    static func commitsChild(url: String, agents: Int, perAgent: Int) async throws -> Never {
        let store = try await PostgresStore(url: url, configuration: .init(syncEveryCommit: true))
        let done = Countdown(agents)
        let blueprint = Blueprint("commits", durability: .checkpointed) {
            for index in 0..<agents {
                Child("writer-\(index)", CheckpointWriter(count: perAgent, done: done), restart: .temporary)
            }
        }
        FileHandle.standardOutput.write(Data("ready\n".utf8))
        _ = readLine()
        let elapsed = try await secondsUntil(done, running: blueprint, on: store)
        FileHandle.standardOutput.write(Data("\(elapsed)\n".utf8))
        await store.close()
        exit(0)
    }

    // MARK: Takeover

    /// Per run, seconds from `since` to its first checkpoint after it by an agent of the current epoch on `worker`.
    static func delays(_ watch: PGConnection, since: Date, worker: Int64) throws -> [Double] {
        let rows = try watch.query(
            """
            SELECT (extract(epoch FROM min(c.created_at) - to_timestamp($1::float8)) * 1000000)::int8
            FROM troupe.runs r JOIN troupe.agents a ON a.run_id = r.id
            JOIN troupe.checkpoints c ON c.agent_id = a.id AND c.epoch = a.epoch
            WHERE r.owner_worker = $2 AND c.created_at > to_timestamp($1::float8) GROUP BY r.id
            """,
            .double(since.timeIntervalSince1970), .int(worker)
        )
        return (0..<rows.count).map { Double(rows.int64($0, 0)) / 1e6 }.sorted()
    }

    /// Reports the median, the 99th percentile and the maximum of sorted `values` (seconds) in milliseconds.
    static func percentiles(_ name: String, _ values: [Double]) {
        guard !values.isEmpty else { return }
        report("\(name)_p50", values[values.count / 2] * 1000, "ms")
        report("\(name)_p99", values[min(values.count - 1, Int(Double(values.count) * 0.99))] * 1000, "ms")
        report("\(name)_max", values[values.count - 1] * 1000, "ms")
    }

    /// Polls `condition` every 20 ms until it holds; fails after `seconds`.
    static func waitFor(_ what: String, seconds: Double = 60, _ condition: () throws -> Bool) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while try !condition() {
            guard Date() < deadline else { throw BenchError("timed out waiting for \(what)") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Kill -9 of a worker owning `runs` runs of `agents` ticking agents: for each run, from the kill to its next
    /// checkpoint written by another worker. Then the same after SIGSTOP, and the zombie's writes after SIGCONT.
    static func takeover(runs: Int, agents: Int) async throws {
        let database = try database()
        defer { database.drop() }
        let store = try await PostgresStore(url: database.url)
        for index in 0..<runs {
            try await store.submit(
                RunRecord(id: RunID("tick-\(index)"), blueprint: "ticking", parameters: ["agents": String(agents), "interval": "500"], durability: .checkpointed)
            )
        }
        let watch = try PGConnection(url: database.url)
        func owned(by worker: Int64) throws -> Int {
            Int(try watch.scalar("SELECT count(*) FROM troupe.runs WHERE owner_worker = $1 AND status = 'running'", .int(worker)) ?? 0)
        }
        func worker(_ index: Int) throws -> ChildProcess {
            try ChildProcess.start(
                environment: ["TROUPE_BENCH_WORKER": "1"],
                arguments: ["worker", "--database", database.url, "--capacity", String(runs)]
            )
        }
        func newestWorker() throws -> Int64 { try watch.scalar("SELECT max(id) FROM troupe.workers") ?? 0 }
        func delays(since: Date, worker: Int64) throws -> [Double] { try Self.delays(watch, since: since, worker: worker) }

        let first = try worker(0)
        _ = try first.line()  // "troupe: worker N on …"
        let firstID = try newestWorker()
        try await waitFor("worker \(firstID) to drive all \(runs) runs") { try owned(by: firstID) == runs }
        let second = try worker(1)
        _ = try second.line()
        let secondID = try newestWorker()

        // kill -9: the database frees the dead session's lock at once; the next scan evicts and claims.
        let killed = Date()
        kill(first.process.processIdentifier, SIGKILL)
        first.process.waitUntilExit()
        try await waitFor("worker \(secondID) to take over") { try delays(since: killed, worker: secondID).count == runs }
        percentiles("postgres_takeover_after_kill9_\(runs)runs_\(agents)agents", try delays(since: killed, worker: secondID))

        // SIGSTOP: the session lives on; the heartbeat goes stale, the zombie is evicted and fenced.
        let third = try worker(2)
        _ = try third.line()
        let thirdID = try newestWorker()
        let stopped = Date()
        kill(second.process.processIdentifier, SIGSTOP)
        try await waitFor("worker \(thirdID) to take over from a stopped worker") { try delays(since: stopped, worker: thirdID).count == runs }
        percentiles("postgres_takeover_after_sigstop_\(runs)runs_\(agents)agents", try delays(since: stopped, worker: thirdID))
        kill(second.process.processIdentifier, SIGCONT)
        // The zombie finds itself evicted, stops its runs and registers again as a new worker; any checkpoint of an
        // old epoch after the stop is a write the database accepted from a fenced owner.
        try await waitFor("the stopped worker to register again after SIGCONT", seconds: 30) {
            try watch.scalar(
                "SELECT count(*) FROM troupe.workers WHERE pid = $1 AND id > $2", .int(Int64(second.process.processIdentifier)), .int(secondID)
            ) == 1
        }
        let accepted = try watch.scalar(
            """
            SELECT count(*) FROM troupe.checkpoints c JOIN troupe.agents a ON a.id = c.agent_id
            WHERE c.epoch < a.epoch AND c.created_at > to_timestamp($1::float8)
            """,
            .double(stopped.timeIntervalSince1970)
        ) ?? -1
        report("postgres_commits_accepted_from_fenced_owner", Double(accepted), "commits")

        // A message from outside to a durable agent of a run on a worker (`troupe send`): from its row to its
        // application by the owning worker, which stores the message durably and delivers it first.
        func deliveries(_ count: Int, through sender: PostgresStore) async throws -> [Double] {
            var latencies: [Double] = []
            for index in 0..<count {
                let id = try await sender.enqueue(.send(agent: "inbox", message: #"{"note":{}}"#), for: RunID("tick-\(index % runs)"))
                try await waitFor("message \(id) to be applied", seconds: 10) {
                    try watch.scalar("SELECT count(*) FROM troupe.commands WHERE id = $1 AND applied_at IS NOT NULL", .int(id)) == 1
                }
                let micros = try watch.scalar(
                    "SELECT (extract(epoch FROM applied_at - created_at) * 1000000)::int8 FROM troupe.commands WHERE id = $1", .int(id)
                ) ?? 0
                latencies.append(Double(micros) / 1e6)
            }
            return latencies.sorted()
        }
        percentiles("postgres_message_to_owner", try await deliveries(runs * 3, through: store))
        // The same without notifications (a pooler that does not pass them): the owning worker's poll finds it.
        let silent = try await PostgresStore(url: database.url, configuration: .init(notifications: false))
        percentiles("postgres_message_to_owner_without_notifications", try await deliveries(20, through: silent))
        await silent.close()

        for worker in [second, third] {
            worker.process.terminate()
            worker.process.waitUntilExit()
        }
        await store.close()
    }

    /// Takeover after a partition: a worker in a network namespace reaches the server through a forwarder on the
    /// host's end of a veth pair and drives `runs` runs; the link goes down (packets dropped, nothing reset: the
    /// server sees its sessions alive), and another worker takes the runs over. Needs root and iproute2.
    static func partitionTakeover(runs: Int, agents: Int) async throws {
        guard getuid() == 0, let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }),
            let server, let serverPort = URLComponents(string: server)?.port
        else {
            FileHandle.standardError.write(Data("troupe-bench: partition figure skipped: needs root, iproute2 and a server URL with a port\n".utf8))
            return
        }
        func run(_ arguments: String...) throws {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: ip)
            process.arguments = arguments
            try process.run()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else { throw BenchError("ip \(arguments.joined(separator: " ")) failed") }
        }
        let index = Int.random(in: 1...250)
        let (namespace, outer, inner) = ("troupe-bench-\(getpid())", "tbh\(index)", "tbn\(index)")
        let (hostAddress, insideAddress) = ("10.124.\(index).1", "10.124.\(index).2")
        defer {
            try? run("link", "del", outer)
            try? run("netns", "del", namespace)
        }
        try run("netns", "add", namespace)
        try run("link", "add", outer, "type", "veth", "peer", "name", inner)
        try run("link", "set", inner, "netns", namespace)
        try run("addr", "add", hostAddress + "/30", "dev", outer)
        try run("link", "set", outer, "up")
        try run("netns", "exec", namespace, ip, "addr", "add", insideAddress + "/30", "dev", inner)
        try run("netns", "exec", namespace, ip, "link", "set", inner, "up")
        let forwarder = try Forwarder(listeningOn: hostAddress, to: serverPort)
        defer { forwarder.close() }

        let database = try database()
        defer { database.drop() }
        let store = try await PostgresStore(url: database.url)
        for index in 0..<runs {
            try await store.submit(
                RunRecord(id: RunID("cut-\(index)"), blueprint: "ticking", parameters: ["agents": String(agents), "interval": "500"], durability: .checkpointed)
            )
        }
        let watch = try PGConnection(url: database.url)
        let name = database.url.split(separator: "/").last.map(String.init) ?? ""
        let insideURL = "postgres://troupe@\(hostAddress):\(forwarder.port)/\(name)"
        let inside = try ChildProcess.start(
            environment: ["TROUPE_BENCH_WORKER": "1"], arguments: ["worker", "--database", insideURL, "--capacity", String(runs)],
            prefix: [ip, "netns", "exec", namespace]
        )
        defer { kill(inside.process.processIdentifier, SIGKILL) }
        _ = try inside.line()
        func owned(by worker: Int64) throws -> Int {
            Int(try watch.scalar("SELECT count(*) FROM troupe.runs WHERE owner_worker = $1 AND status = 'running'", .int(worker)) ?? 0)
        }
        let insideID = try watch.scalar("SELECT max(id) FROM troupe.workers") ?? 0
        try await waitFor("the worker inside to drive all \(runs) runs") { try owned(by: insideID) == runs }
        let outside = try ChildProcess.start(
            environment: ["TROUPE_BENCH_WORKER": "1"], arguments: ["worker", "--database", database.url, "--capacity", String(runs)]
        )
        _ = try outside.line()
        let outsideID = try watch.scalar("SELECT max(id) FROM troupe.workers") ?? 0

        let cut = Date()
        try run("link", "set", outer, "down")
        try await waitFor("the worker outside to take over") { try delays(watch, since: cut, worker: outsideID).count == runs }
        percentiles("postgres_takeover_after_partition_\(runs)runs_\(agents)agents", try delays(watch, since: cut, worker: outsideID))
        outside.process.terminate()
        outside.process.waitUntilExit()
        await store.close()
    }

    /// The database writes of one idle worker (no runs): rows it inserts, updates or deletes per second, from the
    /// server's statistics of its own database (a backend reports them at the end of a transaction, at most a
    /// second late: the window's two ends lag alike).
    static func idleWorker(seconds: Int) async throws {
        let database = try database()
        defer { database.drop() }
        await (try PostgresStore(url: database.url)).close()
        let watch = try PGConnection(url: database.url)
        let idle = try ChildProcess.start(environment: ["TROUPE_BENCH_WORKER": "1"], arguments: ["worker", "--database", database.url])
        _ = try idle.line()
        try await Task.sleep(for: .seconds(2))
        let written = """
            SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::int8 FROM pg_stat_user_tables WHERE schemaname = 'troupe'
            """
        // A fresh snapshot of the statistics at each read.
        try watch.execute("SET stats_fetch_consistency = none")
        let before = try watch.scalar(written) ?? 0
        try await Task.sleep(for: .seconds(seconds))
        let after = try watch.scalar(written) ?? 0
        report("postgres_idle_worker_writes", Double(after - before) / Double(seconds), "rows/s")
        idle.process.terminate()
        idle.process.waitUntilExit()
    }
}

/// A child process of this binary, talking over lines on its standard input and output.
struct ChildProcess {
    let process: Process
    private let input: Pipe
    private let output: FileHandle
    private let buffer = LineBuffer()

    /// Starts this binary with `arguments`, after `prefix` if given (`ip netns exec NAME`, to run it in a namespace).
    static func start(environment: [String: String], arguments: [String], prefix: [String] = []) throws -> ChildProcess {
        let process = Process()
        let command = prefix + [CommandLine.arguments[0]] + arguments
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        // Its log goes to a file (the benchmark's output is its figures): TROUPE_BENCH_LOGS names a directory.
        if let directory = ProcessInfo.processInfo.environment["TROUPE_BENCH_LOGS"] {
            let path = directory + "/child-\(UUID().uuidString.prefix(8)).log"
            _ = FileManager.default.createFile(atPath: path, contents: nil)
            process.standardError = FileHandle(forWritingAtPath: path)
        } else {
            process.standardError = FileHandle.nullDevice
        }
        try process.run()
        return ChildProcess(process: process, input: input, output: output.fileHandleForReading)
    }

    /// The next line it prints.
    func line() throws -> String {
        while true {
            if let line = buffer.next() { return line }
            let chunk = output.availableData
            guard !chunk.isEmpty else { throw BenchError("a child process ended before saying what was expected") }
            buffer.append(chunk)
        }
    }

    func say(_ line: String) { input.fileHandleForWriting.write(Data((line + "\n").utf8)) }
}

/// A TCP forwarder: accepts on `address` (a free port) and pipes each connection to 127.0.0.1:`port`, two threads
/// per connection. For the partition figure: the worker in a namespace reaches the server through it.
final class Forwarder: Sendable {
    let port: Int
    private let listener: Int32

    init(listeningOn address: String, to target: Int) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listener = listener
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_addr.s_addr = inet_addr(address)
        let bound = withUnsafePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 128) == 0 else { throw BenchError("the forwarder cannot listen on \(address)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(listener, $0, &length) }
        }
        port = Int(UInt16(bigEndian: local.sin_port))
        Thread.detachNewThread {
            while true {
                let client = accept(listener, nil, nil)
                guard client >= 0 else { return }
                let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                var remote = sockaddr_in()
                remote.sin_family = sa_family_t(AF_INET)
                remote.sin_port = in_port_t(UInt16(target).bigEndian)
                remote.sin_addr.s_addr = inet_addr("127.0.0.1")
                let connected = withUnsafePointer(to: &remote) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
                guard connected == 0 else {
                    Glibc.close(client)
                    Glibc.close(upstream)
                    continue
                }
                for (from, to) in [(client, upstream), (upstream, client)] {
                    Thread.detachNewThread {
                        var buffer = [UInt8](repeating: 0, count: 65_536)
                        while true {
                            let count = read(from, &buffer, buffer.count)
                            guard count > 0, write(to, buffer, count) == count else { break }
                        }
                        shutdown(to, Int32(SHUT_WR))
                    }
                }
            }
        }
    }

    func close() { shutdown(listener, Int32(SHUT_RDWR)) }
}

/// Bytes read from a child, cut into lines. Used by one thread at a time (the benchmark's sequential steps).
final class LineBuffer: @unchecked Sendable {
    private var data = Data()

    func append(_ chunk: Data) { data.append(chunk) }

    func next() -> String? {
        guard let newline = data.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        let line = String(decoding: data[data.startIndex..<newline], as: UTF8.self)
        data = Data(data[(newline + 1)...])
        return line
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

// MARK: The workers' blueprint

/// A loop agent that checkpoints a tick every `interval`: a run whose every agent shows when it last ran.
struct Ticker: Agent {
    struct State: AgentState {
        var ticks = 0
    }

    let interval: Duration

    func initialState() -> State { State() }

    func run(state: inout State, context: AgentContext<Self>) async throws {
        while true {
            try await context.sleep(for: interval)
            state.ticks += 1
            try await context.checkpoint(state)
        }
    }
}

/// A durable handler agent that counts the messages sent to it from outside.
struct Inbox: HandlerAgent {
    struct State: AgentState {
        var notes = 0
    }

    enum Message: Codable, Sendable { case note }

    func initialState() -> State { State() }

    func handle(_ message: Message, state: inout State, context: AgentContext<Self>) async throws {
        state.notes += 1
    }
}

/// The worker child process: `troupe worker` with the `ticking` blueprint.
func benchWorkerMain() async -> Never {
    for scheme in ["postgres", "postgresql"] {
        TroupeCommand.register(scheme: scheme) { location in
            try await PostgresStore(url: location.text, configuration: .init(retention: location.retention, readOnly: location.readOnly))
        }
    }
    let ticking = BlueprintEntry(
        "ticking",
        summary: "Agents that checkpoint a tick every `interval` milliseconds.",
        parameters: [
            .init("agents", default: "10", help: "How many agents.", kind: .integer(1...100_000)),
            .init("interval", default: "100", help: "Milliseconds between ticks.", kind: .integer(1...60_000)),
        ]
    ) { parameters in
        let agents = try parameters.int("agents")
        let interval = Duration.milliseconds(try parameters.int("interval"))
        return Blueprint("ticking", durability: .checkpointed) {
            for index in 0..<agents { Child("ticker-\(index)", Ticker(interval: interval)) }
            Child("inbox", Inbox(), options: AgentOptions(durability: .durable))
        }
    }
    await TroupeCommand.main(blueprints: [ticking])
    exit(0)
}
