import Foundation
import Testing
import Troupe
@testable import TroupeSQLite

@Suite(.timeLimit(.minutes(3)))
struct MigrationTests {
    /// The embedded list must name every file in `migrations/sqlite/`, in order, with the same text.
    @Test func theEmbeddedMigrationsMatchTheFolder() throws {
        let folder = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("migrations/sqlite")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path)
            .filter { $0.hasSuffix(".sql") }
            .sorted()
        #expect(files == Migrator.migrations.map(\.name))
        for (index, migration) in Migrator.migrations.enumerated() {
            #expect(migration.id == index + 1)
            #expect(migration.name.hasPrefix(String(format: "%04d_", migration.id)))
            let text = try String(contentsOf: folder.appendingPathComponent(migration.name), encoding: .utf8)
            #expect(text == migration.sql, "\(migration.name) differs from the embedded copy")
            #expect(text.hasPrefix("-- "), "\(migration.name) must open with a comment saying what and why")
        }
    }

    @Test func openingCreatesTheSchemaAndRecordsEachMigration() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("nested/dir/troupe.db")
        let recorded = try await withStore(path) { store in
            try await store.read { connection in
                try connection.texts("SELECT name || ':' || checksum FROM troupe_migrations ORDER BY id")
            }
        }
        #expect(recorded == Migrator.migrations.map { "\($0.name):\($0.checksum)" })
        // Opening again applies nothing and changes nothing.
        let tables = try await withStore(path) { store in
            try await store.read { try $0.texts("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name") }
        }
        #expect(Set(tables).isSuperset(of: ["runs", "agents", "checkpoints", "messages", "dead_letters", "events", "commands"]))
    }

    /// 0010 moves each agent's last committed sequence out of its row: what a database of 0009 recorded is what the
    /// integrity check and a resume see afterwards.
    @Test func checkpointHeadsCarryOverTheSequencesAgentsRecorded() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file()
        do {
            let connection = try Connection(path: path)
            try connection.execute(
                "CREATE TABLE troupe_migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT"
            )
            for migration in Migrator.migrations where migration.id <= 9 {
                try connection.execute(migration.sql)
                try connection.statement("INSERT INTO troupe_migrations (id, name, checksum, applied_at) VALUES (?, ?, ?, 0)")
                    .run(.integer(Int64(migration.id)), .text(migration.name), .text(migration.checksum))
            }
            try connection.execute(
                """
                INSERT INTO runs (id, blueprint, status, created_at, updated_at) VALUES ('run-m', 'm', 'stopped', 0, 0);
                INSERT INTO agents (id, run_id, name, type, durability, status, epoch, updated_at, last_seq)
                    VALUES (1, 'run-m', 'counted', 'Counter', 'durable', 'stopped', 1, 0, 7),
                           (2, 'run-m', 'fresh', 'Counter', 'durable', 'stopped', 1, 0, 0);
                INSERT INTO checkpoints (agent_id, seq, epoch, state_version, created_at, state) VALUES
                    (1, 6, 1, 1, 0, CAST('six' AS BLOB)), (1, 7, 1, 1, 0, CAST('seven' AS BLOB));
                """
            )
        }
        try await withStore(path) { store in
            let heads = try await store.read { try $0.texts("SELECT agent_id || ':' || last_seq FROM checkpoint_heads ORDER BY agent_id") }
            #expect(heads == ["1:7"])
            let columns = try await store.read { try $0.texts("SELECT name FROM pragma_table_info('agents')") }
            #expect(!columns.contains("last_seq"))
            let agent = AgentID(run: "run-m", name: "counted")
            #expect(try await store.checkpoints(of: agent).map { String(decoding: $0.state, as: UTF8.self) } == ["six", "seven"])
            _ = try await store.attach(RunRecord(id: "run-m", blueprint: "m", agents: ["counted", "fresh"]))
            let claims = try await store.claim([
                ClaimRequest(agent: agent, type: "Counter", durability: .durable, incarnation: 1),
                ClaimRequest(agent: AgentID(run: "run-m", name: "fresh"), type: "Counter", durability: .durable, incarnation: 1),
            ])
            #expect(claims[0].latest?.sequence == 7)
            #expect(claims[1].latest == nil)
            // The next commit moves the head on.
            let next = Checkpoint(agent: agent, epoch: claims[0].epoch, sequence: 8, stateVersion: 1, state: Array("eight".utf8))
            _ = try await store.commit(Commit(run: agent.run, agent: agent, epoch: claims[0].epoch, checkpoint: next))
            #expect(try await store.checkpoints(of: agent).last?.sequence == 8)
            await store.detach(agent.run, outcome: .stopped, error: nil)
        }
    }

    @Test func aDatabaseFromANewerTroupeIsRefusedAndLeftUntouched() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file()
        try await withStore(path) { store in
            _ = try await store.write { connection in
                try connection.execute(
                    "INSERT INTO troupe_migrations (id, name, checksum, applied_at) VALUES (9999, '9999_from_the_future.sql', 'x', 0)"
                )
            }
        }
        let before = contents(path)
        await #expect(throws: TroupeError(.futureSchema, "")) { _ = try await SQLiteStore(path: path) }
        do {
            _ = try await SQLiteStore(path: path)
        } catch let error as TroupeError {
            #expect(error.message.contains("9999_from_the_future.sql"))
            #expect(error.message.contains("Upgrade troupe"))
        }
        #expect(contents(path) == before)
    }

    @Test func anEditedMigrationIsRefused() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file()
        try await withStore(path) { store in
            _ = try await store.write { try $0.execute("UPDATE troupe_migrations SET checksum = 'edited' WHERE id = 1") }
        }
        let before = contents(path)
        await #expect(throws: TroupeError(.schemaMismatch, "")) { _ = try await SQLiteStore(path: path) }
        #expect(contents(path) == before)
    }

    @Test func aFileThatIsNotSQLiteIsRefusedAndLeftUntouched() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file()
        let garbage = Data(String(repeating: "not a database, just some notes\n", count: 200).utf8)
        _ = FileManager.default.createFile(atPath: path, contents: garbage)
        await #expect(throws: TroupeError(.notADatabase, "")) { _ = try await SQLiteStore(path: path) }
        #expect(contents(path) == garbage)
    }

    @Test func anotherProgramsDatabaseIsRefused() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file()
        do {
            let connection = try Connection(path: path)
            try connection.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount INTEGER)")
        }
        let before = contents(path)
        await #expect(throws: TroupeError(.schemaMismatch, "")) { _ = try await SQLiteStore(path: path) }
        #expect(contents(path) == before)
    }
}
