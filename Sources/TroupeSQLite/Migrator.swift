import Troupe

/// Applies the SQL files of `migrations/sqlite/`, embedded in the binary, to a database.
///
/// Rules, each for a reason:
/// - Migrations are applied in order, each in its own `BEGIN IMMEDIATE` transaction together with its row in
///   `troupe_migrations` (id, name, checksum, time): a crash between two migrations leaves a database that the
///   next open finishes, never a half-applied file.
/// - A database recording a migration this binary does not know was written by a newer Troupe: it is refused and
///   left untouched, because an older binary cannot know what the newer schema means.
/// - A recorded migration whose checksum differs from the embedded file means someone edited a migration after
///   it shipped: refused, because the database and the code no longer agree on the schema.
/// - A SQLite file that has tables but no `troupe_migrations` belongs to another program: refused.
struct Migrator {
    /// Every migration this binary carries, in order. A test checks this list against the `migrations/` folder.
    static let migrations: [Migration] = [
        Migration(id: 1, name: "0001_initial_schema.sql", sql: String(decoding: PackageResources._001_initial_schema_sql, as: UTF8.self)),
        Migration(id: 2, name: "0002_run_tree_snapshot.sql", sql: String(decoding: PackageResources._002_run_tree_snapshot_sql, as: UTF8.self)),
        Migration(id: 3, name: "0003_steps.sql", sql: String(decoding: PackageResources._003_steps_sql, as: UTF8.self)),
        Migration(
            id: 4,
            name: "0004_message_leases.sql",
            sql: String(decoding: PackageResources._004_message_leases_sql, as: UTF8.self)
        ),
        Migration(
            id: 5,
            name: "0005_typed_operator_records.sql",
            sql: String(decoding: PackageResources._005_typed_operator_records_sql, as: UTF8.self)
        ),
        Migration(
            id: 6,
            name: "0006_agent_last_sequence.sql",
            sql: String(decoding: PackageResources._006_agent_last_sequence_sql, as: UTF8.self)
        ),
        Migration(
            id: 7,
            name: "0007_commit_order.sql",
            sql: String(decoding: PackageResources._007_commit_order_sql, as: UTF8.self)
        ),
        Migration(
            id: 8,
            name: "0008_message_trace.sql",
            sql: String(decoding: PackageResources._008_message_trace_sql, as: UTF8.self)
        ),
        Migration(
            id: 9,
            name: "0009_tree_table.sql",
            sql: String(decoding: PackageResources._009_tree_table_sql, as: UTF8.self)
        ),
        Migration(
            id: 10,
            name: "0010_checkpoint_heads.sql",
            sql: String(decoding: PackageResources._010_checkpoint_heads_sql, as: UTF8.self)
        ),
        Migration(
            id: 11,
            name: "0011_checkpoint_chains.sql",
            sql: String(decoding: PackageResources._011_checkpoint_chains_sql, as: UTF8.self)
        ),
    ]

    let path: String

    /// Checks the database's history against the embedded migrations, then applies the missing ones.
    ///
    /// - Throws: ``TroupeError`` with ``TroupeError/Code/notADatabase``, ``TroupeError/Code/futureSchema`` or
    ///   ``TroupeError/Code/schemaMismatch``, leaving the file as it was.
    func migrate(_ connection: Connection) throws {
        let applied = try history(connection)
        for migration in Self.migrations where applied[migration.id] == nil {
            try connection.withTransaction(.immediate) {
                // Another process may have applied it between our check and our lock.
                if try connection.scalar("SELECT 1 FROM troupe_migrations WHERE id = ?", .integer(Int64(migration.id))) != nil {
                    return
                }
                do {
                    try connection.execute(migration.sql)
                } catch {
                    throw TroupeError(
                        .schemaMismatch,
                        "migration \(migration.name) failed on '\(path)'; the database was rolled back to where it was. "
                            + "Report this with the error below.",
                        underlying: error
                    )
                }
                try connection.statement(
                    "INSERT INTO troupe_migrations (id, name, checksum, applied_at) VALUES (?, ?, ?, ?)"
                ).run(.integer(Int64(migration.id)), .text(migration.name), .text(migration.checksum), .integer(now()))
            }
        }
    }

    /// What the database has applied, after checking it is a Troupe database this binary understands.
    func history(_ connection: Connection) throws -> [Int: String] {
        let tables: [String]
        do {
            tables = try connection.texts("SELECT name FROM sqlite_master WHERE type = 'table'")
        } catch {
            // (A `where` clause on this typed-throws catch crashes the 6.3.1 compiler's ownership checker.)
            guard error.isCorrupt else { throw error }
            throw TroupeError(
                .notADatabase,
                "'\(path)' is not a SQLite database (or is damaged), so Troupe will not touch it. Move it away, or "
                    + "pass --database (or TROUPE_DATABASE) to use another file.",
                underlying: error
            )
        }
        if !tables.contains("troupe_migrations") {
            let foreign = tables.filter { !$0.hasPrefix("sqlite_") }
            guard foreign.isEmpty else {
                throw TroupeError(
                    .schemaMismatch,
                    "'\(path)' is a SQLite database of another program (tables: \(foreign.prefix(5).joined(separator: ", "))), "
                        + "not a Troupe database; it was left untouched. Pass --database (or TROUPE_DATABASE) to use "
                        + "another file."
                )
            }
            if connection.isReadOnlyConnection { return [:] }
            try connection.execute(
                """
                CREATE TABLE IF NOT EXISTS troupe_migrations (
                    id INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at INTEGER NOT NULL
                ) STRICT
                """
            )
            return [:]
        }
        let known = Dictionary(uniqueKeysWithValues: Self.migrations.map { ($0.id, $0) })
        let statement = try connection.statement("SELECT id, name, checksum FROM troupe_migrations ORDER BY id")
        defer { statement.reset() }
        var applied: [Int: String] = [:]
        while try statement.step() {
            let id = statement.int(0)
            let name = statement.text(1) ?? "?"
            let checksum = statement.text(2) ?? ""
            guard let migration = known[id] else {
                let newest = Self.migrations.last.map { String(format4($0.id)) } ?? "none"
                throw TroupeError(
                    .futureSchema,
                    "'\(path)' was written by a newer Troupe: it has migration \(name), and this troupe knows up to "
                        + "\(newest). The database was left untouched. Upgrade troupe, or pass --database to use "
                        + "another file."
                )
            }
            guard migration.checksum == checksum else {
                throw TroupeError(
                    .schemaMismatch,
                    "migration \(migration.name) applied to '\(path)' differs from the one this troupe carries "
                        + "(checksum \(checksum), expected \(migration.checksum)): a migration was edited after it "
                        + "was applied. The database was left untouched; use the troupe build that created it."
                )
            }
            applied[id] = name
        }
        return applied
    }
}

private func format4(_ id: Int) -> String {
    let text = String(id)
    return String(repeating: "0", count: max(0, 4 - text.count)) + text
}
