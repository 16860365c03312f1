import CSQLite
import Synchronization

/// One connection to a SQLite database: the thin layer Troupe writes over the system libsqlite3.
///
/// Why not GRDB.swift: Troupe needs a handful of statements on two kinds of connection (one group-committing
/// writer, read-only readers). The raw layer measured about 25 % faster than GRDB with cached statements on this
/// project's upsert loop, and it keeps the whole database code readable in a few hundred lines.
///
/// A connection is confined to one thread at a time; it does not lock. Troupe's ``Database`` uses one dedicated
/// writer thread and a serial reader queue, never the Swift cooperative pool. ``interrupt()`` is the exception: it
/// may be called from any thread.
public final class Connection {
    /// How a connection opens its file.
    public enum Mode: Sendable {
        /// Read and write, creating the file if it does not exist.
        case readWrite
        /// Read only: the file must exist, and writes fail with `SQLITE_READONLY`.
        case readOnly
    }

    let handle: OpaquePointer
    /// The database file.
    public let path: String
    private var statements: [String: Statement] = [:]

    /// Opens `path`.
    ///
    /// - Parameters:
    ///   - path: A file path, or `:memory:`.
    ///   - mode: Read-write (creating the file) or read-only.
    ///   - busyTimeout: How long a statement waits for another connection's lock before failing with
    ///     `SQLITE_BUSY`.
    /// - Throws: ``SQLiteError`` if the file cannot be opened.
    public init(path: String, mode: Mode = .readWrite, busyTimeout: Duration = .seconds(5)) throws(SQLiteError) {
        _ = Self.configured
        var handle: OpaquePointer?
        var flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI
        switch mode {
        case .readWrite: flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
        case .readOnly: flags |= SQLITE_OPEN_READONLY
        }
        let code = sqlite3_open_v2(path, &handle, flags, nil)
        guard code == SQLITE_OK, let handle else {
            let error = SQLiteError(handle, sql: nil, code: code)
            sqlite3_close_v2(handle)
            throw error
        }
        self.handle = handle
        self.path = path
        sqlite3_extended_result_codes(handle, 1)
        let milliseconds = busyTimeout.components.seconds * 1000 + busyTimeout.components.attoseconds / 1_000_000_000_000_000
        sqlite3_busy_timeout(handle, Int32(clamping: milliseconds))
    }

    /// SQLite's process-wide settings, made once before the first connection opens (a Swift global's initializer
    /// runs once, under a lock). Memory statistics off: they cost a mutex lock and unlock per allocation; locking was
    /// about 7 % of the writer thread's samples in the checkpoint benchmark. Should the host process have started
    /// SQLite already, SQLite refuses the setting and keeps its own, which only costs that time.
    private static let configured: Void = {
        _ = troupe_sqlite3_disable_memory_statistics()
    }()

    deinit {
        statements.removeAll()
        sqlite3_close_v2(handle)
    }

    /// Runs one or more statements that take no parameters and return no rows (DDL, pragmas, `BEGIN`).
    public func execute(_ sql: String) throws(SQLiteError) {
        let code = sqlite3_exec(handle, sql, nil, nil, nil)
        guard code == SQLITE_OK else { throw SQLiteError(handle, sql: sql, code: code) }
    }

    /// Returns a prepared statement for `sql`, cached on this connection: preparing costs more than running.
    public func statement(_ sql: String) throws(SQLiteError) -> Statement {
        if let cached = statements[sql] {
            cached.reset()
            return cached
        }
        let statement = try Statement(connection: self, sql: sql)
        statements[sql] = statement
        return statement
    }

    /// Runs `sql` with `values` and returns the first column of the first row as an integer, or `nil`.
    public func scalar(_ sql: String, _ values: SQLValue...) throws(SQLiteError) -> Int64? {
        let statement = try statement(sql)
        defer { statement.reset() }
        try statement.bind(values)
        guard try statement.step(), !statement.isNull(0) else { return nil }
        return statement.int64(0)
    }

    /// Runs `sql` with `values` and returns the first column of every row as text.
    public func texts(_ sql: String, _ values: SQLValue...) throws(SQLiteError) -> [String] {
        let statement = try statement(sql)
        defer { statement.reset() }
        try statement.bind(values)
        var result: [String] = []
        while try statement.step() { result.append(statement.text(0) ?? "") }
        return result
    }

    /// How a transaction takes its locks.
    public enum TransactionKind: String, Sendable {
        /// Takes locks as statements need them. For reads.
        case deferred = "DEFERRED"
        /// Takes the write lock at once, so that the transaction cannot fail later with `SQLITE_BUSY` because
        /// another writer got in between its read and its write.
        case immediate = "IMMEDIATE"
    }

    /// Runs `body` in a transaction: committed if it returns, rolled back if it throws.
    ///
    /// - Throws: What `body` throws, or ``SQLiteError`` from `BEGIN` or `COMMIT`.
    public func withTransaction<T>(_ kind: TransactionKind = .immediate, _ body: () throws -> T) throws -> T {
        try execute("BEGIN \(kind.rawValue)")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            rollback()
            throw error
        }
    }

    /// Rolls back the open transaction, if any.
    public func rollback() {
        if sqlite3_get_autocommit(handle) == 0 { sqlite3_exec(handle, "ROLLBACK", nil, nil, nil) }
    }

    /// Whether a transaction is open.
    public var isInTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }

    /// Makes the statement running on this connection fail with `SQLITE_INTERRUPT` as soon as it can.
    ///
    /// Safe to call from any thread, as SQLite documents for `sqlite3_interrupt`. It reaches only a statement that
    /// is running: one that starts a moment later runs to its end. ``run(stoppingWhen:_:)`` closes that gap.
    public func interrupt() { sqlite3_interrupt(handle) }

    /// Runs `body` with the statements it runs checking `flag` every thousand virtual-machine steps (a SQLite
    /// progress handler): once the flag is raised, the running statement fails with `SQLITE_INTERRUPT`, and so does
    /// every statement `body` starts after. A cancellation that arrives just before a statement starts, which
    /// ``interrupt()`` would miss, stops it all the same.
    func run<T>(stoppingWhen flag: StopFlag, _ body: () throws -> T) rethrows -> T {
        // The flag outlives the handler: `body` runs inside this call, and the handler is removed before it returns.
        sqlite3_progress_handler(handle, 1000, { context in
            guard let context else { return 0 }
            return Unmanaged<StopFlag>.fromOpaque(context).takeUnretainedValue().isRaised ? 1 : 0
        }, Unmanaged.passUnretained(flag).toOpaque())
        defer { sqlite3_progress_handler(handle, 0, nil, nil) }
        return try body()
    }

    /// Whether the connection was opened read-only.
    public var isReadOnlyConnection: Bool { sqlite3_db_readonly(handle, "main") == 1 }

    /// Rows changed by the last statement.
    public var changes: Int { Int(sqlite3_changes(handle)) }

    /// The rowid of the last inserted row.
    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }

    /// The version of the linked libsqlite3, such as `3.40.1`.
    public static var libraryVersion: String { String(cString: sqlite3_libversion()) }
}

/// A cancellation raised from any thread and checked by the statements of ``Connection/run(stoppingWhen:_:)``.
final class StopFlag: Sendable {
    private let raised = Atomic<Bool>(false)

    init() {}

    var isRaised: Bool { raised.load(ordering: .sequentiallyConsistent) }

    func raise() { raised.store(true, ordering: .sequentiallyConsistent) }
}
