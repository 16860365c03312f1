import Foundation
import Testing
@testable import TroupePostgres

/// The PostgreSQL server the tests use: `TROUPE_TEST_POSTGRES` (a URL whose user may create databases), which
/// `.ci/run` sets to a private server it starts. Without it, PostgreSQL tests are skipped — except under CI (`CI`
/// set), where a missing server is a failure, not a silent skip.
enum TestServer {
    static let url = ProcessInfo.processInfo.environment["TROUPE_TEST_POSTGRES"].flatMap { $0.isEmpty ? nil : $0 }
    static let required = ProcessInfo.processInfo.environment["CI"] != nil

    /// Whether PostgreSQL tests run: a server is configured, or CI requires them (and they fail without one).
    static var enabled: Bool { url != nil || required }

    /// A new, empty database on the server; dropped by ``TestDatabase/drop()``.
    static func database() throws -> TestDatabase {
        guard let url else {
            throw PostgresError(sqlState: "", message: "TROUPE_TEST_POSTGRES is not set: CI must run the PostgreSQL tests (.ci/run starts a server)")
        }
        let name = "troupe_test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let admin = try PGConnection(url: url)
        try admin.execute("CREATE DATABASE \(name)")
        return TestDatabase(name: name, url: PGConnection.url(url, database: name), adminURL: url)
    }
}

/// A database of its own for one test.
struct TestDatabase: Sendable {
    let name: String
    let url: String
    let adminURL: String

    /// Drops the database, ending its sessions (a store left open by a failed check must not keep it).
    func drop() {
        guard let admin = try? PGConnection(url: adminURL) else { return }
        try? admin.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }

    /// Runs `sql` on the database in a session of its own.
    func execute(_ sql: String) throws {
        try PGConnection(url: url).execute(sql)
    }
}
