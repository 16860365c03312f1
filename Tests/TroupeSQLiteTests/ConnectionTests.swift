import Foundation
import Testing
import Troupe
@testable import TroupeSQLite

@Suite(.timeLimit(.minutes(4)))
struct ConnectionTests {
    @Test func statementsBindAndReadEveryType() throws {
        let connection = try Connection(path: ":memory:")
        try connection.execute("CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n TEXT)")
        try connection.statement("INSERT INTO t VALUES (?, ?, ?, ?, ?)")
            .run(.integer(-42), .real(2.5), .text("héllo"), .blob([0, 1, 255]), .null)
        let select = try connection.statement("SELECT i, r, s, b, n FROM t")
        #expect(try select.step())
        #expect(select.int64(0) == -42)
        #expect(select.double(1) == 2.5)
        #expect(select.text(2) == "héllo")
        #expect(select.blob(3) == [0, 1, 255])
        #expect(select.isNull(4) && select.text(4) == nil)
        #expect(try select.step() == false)
    }

    @Test func errorsCarryCodesAndSQLButNeverBoundValues() throws {
        let connection = try Connection(path: ":memory:")
        try connection.execute("CREATE TABLE secrets (value TEXT NOT NULL UNIQUE)")
        let insert = try connection.statement("INSERT INTO secrets (value) VALUES (?)")
        try insert.run(.text("hunter2"))
        do {
            try insert.run(.text("hunter2"))
            Issue.record("a duplicate was inserted")
        } catch {
            #expect(error.code == 19)  // SQLITE_CONSTRAINT
            #expect(error.extendedCode == 2067)  // SQLITE_CONSTRAINT_UNIQUE
            #expect(error.sql == "INSERT INTO secrets (value) VALUES (?)")
            #expect(!error.description.contains("hunter2"))
            #expect(error.description.contains("UNIQUE constraint failed"))
        }
    }

    @Test func aFailedTransactionRollsBack() throws {
        let connection = try Connection(path: ":memory:")
        try connection.execute("CREATE TABLE t (x INTEGER)")
        struct Stop: Error {}
        #expect(throws: Stop.self) {
            try connection.withTransaction {
                try connection.execute("INSERT INTO t VALUES (1)")
                throw Stop()
            }
        }
        #expect(try connection.scalar("SELECT count(*) FROM t") == 0)
        #expect(!connection.isInTransaction)
    }

    /// Counts to ten billion: minutes of work unless stopped.
    static let endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000000000) SELECT count(*) FROM c"

    @Test func aStopRaisedBeforeAStatementStartsStopsIt() throws {
        // `sqlite3_interrupt` before a statement starts is a no-op: a cancellation in that instant used to leave a
        // read running for minutes (seen once in CI). The progress check catches it.
        let connection = try Connection(path: ":memory:")
        let flag = StopFlag()
        flag.raise()
        let started = ContinuousClock.now
        do {
            _ = try connection.run(stoppingWhen: flag) { try connection.scalar(Self.endless) }
            Issue.record("the statement ran to its end")
        } catch let error as SQLiteError {
            #expect(error.isInterrupted)
        }
        #expect(started.duration(to: .now) < .seconds(5))
        // Outside `run`, nothing is checked any more.
        #expect(try connection.scalar("SELECT 1") == 1)
    }

    @Test func cancellingAMaintenanceWriteStopsIt() async throws {
        let directory = try TemporaryDirectory()
        try await withStore(directory.file()) { store in
            let started = ContinuousClock.now
            let write = Task { try await store.write { connection in try connection.scalar(Self.endless) } }
            write.cancel()  // at once: usually before the statement starts
            await #expect(throws: CancellationError.self) { _ = try await write.value }
            // The statement never ends by itself; the bound leaves room for a machine whose cores the other
            // tests hold (CI saw 17 s at the suite's start).
            #expect(started.duration(to: .now) < .seconds(60))
            let one = try await store.write { connection in try connection.scalar("SELECT 1") }
            #expect(one == 1)
        }
    }

    @Test func cancellingAReadInterruptsItsStatement() async throws {
        let directory = try TemporaryDirectory()
        try await withStore(directory.file()) { store in
            let started = ContinuousClock.now
            let query = Task {
                try await store.read { connection in
                    try connection.scalar(Self.endless)
                }
            }
            try await Task.sleep(for: .milliseconds(100))
            query.cancel()
            await #expect(throws: CancellationError.self) { _ = try await query.value }
            #expect(started.duration(to: .now) < .seconds(60))  // as above: the statement never ends by itself
            // The reader still works afterwards.
            #expect(try await store.read { try $0.scalar("SELECT 1") } == 1)
        }
    }
}
