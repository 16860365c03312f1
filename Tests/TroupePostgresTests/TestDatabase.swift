import Foundation
import Testing
import TroupeTestKit
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

/// Runs a blocking call (libpq) on a thread of its own.
func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await offThePool { Result { try body() } }.get()
}
