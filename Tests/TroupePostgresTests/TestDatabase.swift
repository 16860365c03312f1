import Foundation
import Glibc
import Testing
import TroupeTestKit
import TroupeTestSupport
@testable import TroupePostgres

/// The PostgreSQL server the tests use: `TROUPE_TEST_POSTGRES` (a URL whose user may create databases), which
/// `.ci/run` sets to a private server it starts. Without it, PostgreSQL tests are skipped — except under CI (`CI`
/// set), where a missing server is a failure, not a silent skip.
enum TestServer {
    static let url = ProcessInfo.processInfo.environment["TROUPE_TEST_POSTGRES"].flatMap { $0.isEmpty ? nil : $0 }
    static let required = ProcessInfo.processInfo.environment["CI"] != nil

    /// Whether PostgreSQL tests run: a server is configured, or CI requires them (and they fail without one).
    static var enabled: Bool { url != nil || required }

    /// Runs `body` with a new, empty database of its own, and drops it afterwards, also when `body` throws.
    ///
    /// Creating and dropping a database are blocking calls that may take seconds on a busy server (a drop waits for
    /// a checkpoint): they run on threads of their own, never on the cooperative pool that the other tests share.
    static func withDatabase<T: Sendable>(_ body: (TestDatabase) async throws -> T) async throws -> T {
        let database = try await create()
        do {
            let result = try await body(database)
            await database.drop()
            return result
        } catch {
            await database.drop()
            throw error
        }
    }

    private static func create() async throws -> TestDatabase {
        guard let url else {
            throw PostgresError(sqlState: "", message: "TROUPE_TEST_POSTGRES is not set: CI must run the PostgreSQL tests (.ci/run starts a server)")
        }
        let name = "troupe_test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        try await blocking { try PGConnection(url: url).execute("CREATE DATABASE \(name)") }
        return TestDatabase(name: name, url: PGConnection.url(url, database: name), adminURL: url)
    }
}

/// A database of its own for one test.
struct TestDatabase: Sendable {
    let name: String
    let url: String
    let adminURL: String

    /// Drops the database, ending its sessions (a store left open by a failed check must not keep it).
    func drop() async {
        let (adminURL, name) = (adminURL, name)
        try? await blocking { try PGConnection(url: adminURL).execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)") }
    }

    /// Runs `sql` on the database in a session of its own.
    func execute(_ sql: String) async throws {
        let url = url
        try await blocking { try PGConnection(url: url).execute(sql) }
    }
}

/// Runs `arguments` (a program found on PATH, and its arguments) to its end, its output discarded, and returns its
/// exit status. posix_spawn and waitpid, not Foundation's Process: `pg_ctl start` leaves a daemon behind, and
/// Process was seen never to notice its parent's exit then.
///
/// The child gets no descriptor of this process but its 0, 1 and 2: the server daemon it may leave behind lives
/// as long as its test, and a pipe or a `Process`'s socket pair it kept would make other tests' processes look
/// alive that long.
func spawn(_ arguments: [String]) async throws -> Int32 {
    try await blocking { () -> Int32 in
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        var pid: pid_t = 0
        let spawned = whileNoChildStarts {
            // A descriptor listed but closed since (the listing's own) is skipped by the child: posix_spawn
            // ignores a close that fails with EBADF.
            for descriptor in openDescriptorsFrom3() { posix_spawn_file_actions_addclose(&actions, descriptor) }
            return posix_spawnp(&pid, arguments[0], &actions, nil, argv, environ)
        }
        guard spawned == 0 else {
            throw PostgresError(sqlState: "", message: "cannot start \(arguments[0]): \(String(cString: strerror(spawned)))")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }
}

/// Runs a blocking call (libpq) on a thread of its own.
func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await offThePool { Result { try body() } }.get()
}

/// A PostgreSQL server of one test's own, for tests that restart or stop the server under running workers: a
/// cluster in a temporary directory (`initdb`, trust authentication for the user `troupe`), listening on
/// 127.0.0.1 at a free high port. Needs the server's programs (Debian's `postgresql`); `.ci/run` installs them.
final class PrivateServer: Sendable {
    let directory: ScratchDirectory
    let port: Int
    let binaries: String

    /// The server programs' directory, if installed.
    static var installed: String? {
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        return versions.compactMap(Int.init).sorted().last.map { "/usr/lib/postgresql/\($0)/bin" }
            .flatMap { FileManager.default.isExecutableFile(atPath: $0 + "/initdb") ? $0 : nil }
    }

    /// Tests with a private server run where the programs are installed, and always under CI.
    static var enabled: Bool { installed != nil || TestServer.required }

    var url: String { "postgres://troupe@127.0.0.1:\(port)/postgres" }
    private var data: String { directory.file("db") }

    /// Another address the server listens on besides 127.0.0.1 (one end of a veth pair), trusted for clients of
    /// 10.0.0.0/8.
    let alsoListening: String?

    init(alsoListeningOn address: String? = nil) async throws {
        alsoListening = address
        guard let binaries = Self.installed else {
            throw PostgresError(sqlState: "", message: "PostgreSQL's server programs are not installed (apt-get install postgresql)")
        }
        self.binaries = binaries
        directory = try ScratchDirectory("troupe-postgres-")
        if getuid() == 0 { try await Self.asPostgres(["chown", "-R", "postgres:", directory.path], directory: directory, root: true) }
        try await Self.asPostgres([binaries + "/initdb", "-D", directory.file("db"), "-U", "troupe", "-A", "trust", "-E", "UTF8"], directory: directory)
        if address != nil {
            let hba = try FileHandle(forWritingTo: URL(fileURLWithPath: directory.file("db/pg_hba.conf")))
            try hba.seekToEnd()
            try hba.write(contentsOf: Data("host all all 10.0.0.0/8 trust\n".utf8))
            try hba.close()
        }
        // A free port below Linux's ephemeral range (32768 and up), where clients' sockets would take it; and the
        // server must answer on it: with a second address, a port taken on 127.0.0.1 alone does not stop it.
        var failure: (any Error)?
        for _ in 0..<5 {
            let port = Int.random(in: 20_000..<32_000)
            do {
                try await Self.start(binaries: binaries, directory: directory, port: port, also: address)
                let url = "postgres://troupe@127.0.0.1:\(port)/postgres"
                do {
                    try await blocking { try PGConnection(url: url).execute("SELECT 1") }
                } catch {
                    try? await Self.asPostgres([binaries + "/pg_ctl", "-D", directory.file("db"), "-m", "immediate", "-w", "stop"], directory: directory)
                    throw error
                }
                self.port = port
                return
            } catch {
                failure = error
            }
        }
        throw failure!
    }

    private static func start(binaries: String, directory: ScratchDirectory, port: Int, also: String?) async throws {
        try await asPostgres(
            [binaries + "/pg_ctl", "-D", directory.file("db"), "-l", directory.file("server.log"), "-w", "-t", "60", "-o",
             options(directory: directory, port: port, also: also), "start"],
            directory: directory
        )
    }

    /// `pg_ctl restart -m immediate`: every session is cut off, nothing is shut down cleanly, the server recovers.
    func restartImmediately() async throws {
        try await Self.asPostgres(
            [binaries + "/pg_ctl", "-D", data, "-l", directory.file("server.log"), "-m", "immediate", "-w", "-t", "60", "-o",
             Self.options(directory: directory, port: port, also: alsoListening), "restart"],
            directory: directory
        )
    }

    /// ``restartImmediately()``, returning the longest time meanwhile that nothing listened on the server's port
    /// (connections refused, looked at every 20 ms): how long the workers heard nothing at all, not even that
    /// the server is starting up or recovering.
    func restartImmediatelyTimingTheOutage() async throws -> Duration {
        let done = Flag()
        async let outage = blocking { [port] in
            var longest = Duration.zero
            var refusedSince: ContinuousClock.Instant?
            while true {
                let finished = done.isRaised
                let now = ContinuousClock.now
                if Self.refuses(port: port) {
                    refusedSince = refusedSince ?? now
                } else if let since = refusedSince {
                    longest = max(longest, now - since)
                    refusedSince = nil
                }
                if finished { return max(longest, refusedSince.map { ContinuousClock.now - $0 } ?? .zero) }
                usleep(20_000)
            }
        }
        do {
            try await restartImmediately()
        } catch {
            done.raise()
            _ = try? await outage
            throw error
        }
        done.raise()
        return try await outage
    }

    /// Whether a TCP connection to `port` on 127.0.0.1 is refused (nothing listens there).
    private static func refuses(port: Int) -> Bool {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard socket >= 0 else { return false }
        defer { Glibc.close(socket) }
        var address = RecoveringProxy.loopback(port: port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return connected != 0 && errno == ECONNREFUSED
    }

    /// Stops the server at once.
    func stop() async {
        try? await Self.asPostgres([binaries + "/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"], directory: directory)
    }

    private static func options(directory: ScratchDirectory, port: Int, also: String?) -> String {
        // No fsync: the tests stop and kill the server, never the machine, and syncing cost every test time.
        "-c listen_addresses=127.0.0.1\(also.map { "," + $0 } ?? "") -p \(port) -k \(directory.path) -c max_connections=100 -c fsync=off"
    }

    /// Runs a server program as the user `postgres` when this process is root (the server refuses to run as root).
    private static func asPostgres(_ command: [String], directory: ScratchDirectory, root: Bool = false) async throws {
        let arguments = getuid() == 0 && !root ? ["runuser", "-u", "postgres", "--"] + command : command
        let status = try await spawn(arguments)
        guard status == 0 else {
            let log = (try? String(contentsOfFile: directory.file("server.log"), encoding: .utf8)) ?? ""
            throw PostgresError(sqlState: "", message: "\(arguments.joined(separator: " ")) exited \(status)\n\(log.suffix(2_000))")
        }
    }
}
