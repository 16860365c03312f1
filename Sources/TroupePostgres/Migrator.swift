import Troupe

/// Applies the SQL files of `migrations/postgres/`, embedded in the binary, to a database's `troupe` schema.
///
/// The rules of the SQLite store's migrator, on PostgreSQL:
/// - Everything lives in the schema `troupe`, so a database shared with other programs is fine; a `troupe` schema
///   that has tables but no `troupe_migrations` belongs to someone else and is refused, untouched.
/// - The missing migrations are applied in one transaction holding a transaction-level advisory lock, so two
///   processes opening a new database at once apply each migration once, and a crash leaves the old schema whole.
/// - A database recording a migration this binary does not know was written by a newer Troupe: refused, untouched.
/// - A recorded migration whose checksum differs from the embedded file was edited after it shipped: refused.
struct Migrator {
    /// Every migration this binary carries, in order. A test checks this list against the `migrations/` folder.
    static let migrations: [Migration] = [
        Migration(id: 1, name: "0001_initial_schema.sql", sql: String(decoding: PackageResources._001_initial_schema_sql, as: UTF8.self)),
        Migration(id: 2, name: "0002_workers.sql", sql: String(decoding: PackageResources._002_workers_sql, as: UTF8.self)),
        Migration(id: 3, name: "0003_run_builds.sql", sql: String(decoding: PackageResources._003_run_builds_sql, as: UTF8.self)),
        Migration(id: 4, name: "0004_server_starts.sql", sql: String(decoding: PackageResources._004_server_starts_sql, as: UTF8.self)),
        Migration(id: 5, name: "0005_message_trace.sql", sql: String(decoding: PackageResources._005_message_trace_sql, as: UTF8.self)),
    ]

    /// The advisory lock key that serialises migrations (any constant unlikely to clash: "troupe" in ASCII).
    static let lockKey: Int64 = 0x74_72_6F_75_70_65

    let location: String

    /// Checks the database's history against the embedded migrations, then applies the missing ones.
    func migrate(_ connection: PGConnection) throws {
        _ = try history(connection)
        try connection.execute("BEGIN")
        do {
            try connection.query("SELECT pg_advisory_xact_lock($1)", .int(Self.lockKey))
            try connection.execute(
                """
                CREATE SCHEMA IF NOT EXISTS troupe;
                CREATE TABLE IF NOT EXISTS troupe.troupe_migrations (
                    id integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL
                )
                """
            )
            // Another process may have applied some between our check and our lock.
            let applied = try history(connection)
            for migration in Self.migrations where applied[migration.id] == nil {
                do {
                    try connection.execute(migration.sql)
                } catch {
                    throw TroupeError(
                        .schemaMismatch,
                        "migration \(migration.name) failed on \(location); the database was rolled back to where it "
                            + "was. Report this with the error below.",
                        underlying: error
                    )
                }
                try connection.query(
                    "INSERT INTO troupe_migrations (id, name, checksum, applied_at) VALUES ($1, $2, $3, now())",
                    .int(Int64(migration.id)), .text(migration.name), .text(migration.checksum)
                )
            }
            try connection.execute("COMMIT")
        } catch {
            connection.rollback()
            throw error
        }
    }

    /// What the database has applied, after checking its `troupe` schema is a Troupe schema this binary understands.
    func history(_ connection: PGConnection) throws -> [Int: String] {
        let tables = try connection.query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'troupe' ORDER BY 1"
        )
        let names = (0..<tables.count).compactMap { tables.text($0, 0) }
        guard names.contains("troupe_migrations") else {
            guard names.isEmpty else {
                throw TroupeError(
                    .schemaMismatch,
                    "the schema 'troupe' of \(location) belongs to another program (tables: "
                        + "\(names.prefix(5).joined(separator: ", "))) and has no Troupe migrations; it was left "
                        + "untouched. Use another database, or drop that schema if it is yours."
                )
            }
            return [:]
        }
        let known = Dictionary(uniqueKeysWithValues: Self.migrations.map { ($0.id, $0) })
        let rows = try connection.query("SELECT id, name, checksum FROM troupe.troupe_migrations ORDER BY id")
        var applied: [Int: String] = [:]
        for row in 0..<rows.count {
            let id = rows.int(row, 0)
            let name = rows.text(row, 1) ?? "?"
            let checksum = rows.text(row, 2) ?? ""
            guard let migration = known[id] else {
                throw TroupeError(
                    .futureSchema,
                    "\(location) was written by a newer Troupe: it has migration \(name), and this troupe knows up to "
                        + "\(Self.migrations.last?.name ?? "none"). The database was left untouched. Upgrade troupe, "
                        + "or pass --database to use another database."
                )
            }
            guard migration.checksum == checksum else {
                throw TroupeError(
                    .schemaMismatch,
                    "migration \(migration.name) applied to \(location) differs from the one this troupe carries "
                        + "(checksum \(checksum), expected \(migration.checksum)): a migration was edited after it "
                        + "was applied. The database was left untouched; use the troupe build that created it."
                )
            }
            applied[id] = name
        }
        return applied
    }
}
