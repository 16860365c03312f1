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

    /// A database at `path` built by hand up to migration `last`, as a release of then left it.
    static func database(_ path: String, migratedTo last: Int) throws -> Connection {
        let connection = try Connection(path: path)
        try connection.execute(
            "CREATE TABLE troupe_migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT"
        )
        for migration in Migrator.migrations where migration.id <= last {
            try connection.execute(migration.sql)
            try connection.statement("INSERT INTO troupe_migrations (id, name, checksum, applied_at) VALUES (?, ?, ?, 0)")
                .run(.integer(Int64(migration.id)), .text(migration.name), .text(migration.checksum))
        }
        return connection
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
            let connection = try Self.database(path, migratedTo: 9)
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

    /// 0011 drops the index on checkpoints: each head learns its latest row, each row its predecessor, each run the
    /// sum of its heads. What a database of 0010 held is what listings, the check, a resume and retention see after.
    @Test func checkpointChainsCarryOverWhatTheIndexFound() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file()
        do {
            let connection = try Self.database(path, migratedTo: 10)
            // Two runs; rows of their agents interleaved as commits wrote them.
            try connection.execute(
                """
                INSERT INTO runs (id, blueprint, status, created_at, updated_at) VALUES ('run-a', 'm', 'stopped', 0, 0),
                    ('run-b', 'm', 'stopped', 0, 0);
                INSERT INTO agents (id, run_id, name, type, durability, status, epoch, updated_at) VALUES
                    (1, 'run-a', 'x', 'Counter', 'durable', 'stopped', 1, 0), (2, 'run-a', 'y', 'Counter', 'durable', 'stopped', 1, 0),
                    (3, 'run-b', 'x', 'Counter', 'durable', 'stopped', 1, 0), (4, 'run-b', 'idle', 'Counter', 'durable', 'stopped', 1, 0);
                INSERT INTO checkpoints (agent_id, seq, epoch, state_version, created_at, state, txn) VALUES
                    (1, 5, 1, 1, 0, CAST('a5' AS BLOB), 1), (2, 1, 1, 1, 0, CAST('y1' AS BLOB), 1), (1, 6, 1, 1, 0, CAST('a6' AS BLOB), 2),
                    (3, 9, 1, 1, 0, CAST('b9' AS BLOB), 1), (1, 7, 1, 1, 0, CAST('a7' AS BLOB), 3), (2, 2, 1, 1, 0, CAST('y2' AS BLOB), 3);
                INSERT INTO checkpoint_heads (agent_id, last_seq) VALUES (1, 7), (2, 2), (3, 9);
                """
            )
        }
        try await withStore(path) { store in
            let (heads, chains, sums, indexes) = try await store.read { connection in
                (
                    try connection.texts("SELECT agent_id || ':' || last_seq || '@' || last_id FROM checkpoint_heads ORDER BY agent_id"),
                    try connection.texts("SELECT id || '<' || coalesce(prev, '-') FROM checkpoints ORDER BY id"),
                    try connection.texts("SELECT id || '=' || head_sum FROM runs ORDER BY id"),
                    try connection.texts("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'checkpoints'")
                )
            }
            #expect(heads == ["1:7@5", "2:2@6", "3:9@4"])
            #expect(chains == ["1<-", "2<-", "3<1", "4<-", "5<3", "6<2"])
            #expect(sums == ["run-a=9", "run-b=9"])
            #expect(indexes.isEmpty)
            #expect(try await store.check().problems.isEmpty)
            let x = AgentID(run: "run-a", name: "x")
            #expect(try await store.checkpoints(of: x).map { String(decoding: $0.state, as: UTF8.self) } == ["a5", "a6", "a7"])
            #expect(try await store.checkpointHistory(of: AgentID(run: "run-a", name: "y")).map(\.sequence) == [1, 2])
            #expect(try await store.agents(of: "run-b").map { "\($0.name):\($0.lastCheckpoint.map(String.init) ?? "-")" } == ["idle:-", "x:9"])
            _ = try await store.attach(RunRecord(id: "run-a", blueprint: "m", agents: ["x", "y"]))
            let claim = try await store.claim(x, type: "Counter", durability: .durable, incarnation: 1)
            #expect(claim.latest?.sequence == 7)
            // The next commit moves the head on, and retention (3) drops #5 by the row id its chain gives.
            let next = Checkpoint(agent: x, epoch: claim.epoch, sequence: 8, stateVersion: 1, state: Array("a8".utf8))
            _ = try await store.commit(Commit(run: x.run, agent: x, epoch: claim.epoch, checkpoint: next))
            #expect(try await store.checkpoints(of: x).map(\.sequence) == [6, 7, 8])
            await store.detach(x.run, outcome: .stopped, error: nil)
            let sum = try await store.read { try $0.scalar("SELECT head_sum FROM runs WHERE id = 'run-a'") }
            #expect(sum == 10)
            #expect(try await store.check().problems.isEmpty)
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
