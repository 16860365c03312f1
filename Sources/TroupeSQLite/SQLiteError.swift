import CSQLite

/// An error reported by SQLite: its primary and extended result codes, its message, and the SQL that failed.
///
/// Bound values are never part of the error, so that an error logged or shown to an operator cannot leak the
/// contents of a checkpoint or a message.
public struct SQLiteError: Error, Sendable, Hashable, CustomStringConvertible {
    /// SQLite's primary result code, such as `SQLITE_BUSY` (5) or `SQLITE_FULL` (13).
    public var code: Int32
    /// SQLite's extended result code, such as `SQLITE_BUSY_SNAPSHOT` (517).
    public var extendedCode: Int32
    /// SQLite's explanation.
    public var message: String
    /// The statement that failed, if any.
    public var sql: String?

    /// Creates an error.
    public init(code: Int32, extendedCode: Int32? = nil, message: String, sql: String? = nil) {
        self.code = code
        self.extendedCode = extendedCode ?? code
        self.message = message
        self.sql = sql
    }

    /// Reads the last error of `handle`.
    init(_ handle: OpaquePointer?, sql: String?, code: Int32) {
        let extended = handle.map { sqlite3_extended_errcode($0) } ?? code
        let message = handle.flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) }
            ?? String(cString: sqlite3_errstr(code))
        self.init(code: code & 0xff, extendedCode: extended, message: message, sql: sql)
    }

    /// Another connection holds the lock, and the busy timeout ran out.
    public var isBusy: Bool { code == SQLITE_BUSY || code == SQLITE_LOCKED }
    /// The statement was interrupted (cancelled).
    public var isInterrupted: Bool { code == SQLITE_INTERRUPT }
    /// The disk or the database's size limit is full.
    public var isFull: Bool { code == SQLITE_FULL }
    /// The database or its directory cannot be written.
    public var isReadOnly: Bool { code == SQLITE_READONLY || code == SQLITE_CANTOPEN || code == SQLITE_PERM }
    /// The file is not a database, or is damaged.
    public var isCorrupt: Bool { code == SQLITE_NOTADB || code == SQLITE_CORRUPT }
    /// A table is locked by another connection of a shared cache: SQLite does not wait on it, the caller must.
    public var isTableLocked: Bool { code == SQLITE_LOCKED }
    /// The file (or one SQLite needs beside it, such as the `-shm` of a WAL database) could not be opened.
    public var cannotOpen: Bool { code == SQLITE_CANTOPEN }

    public var description: String {
        var text = "SQLite error \(code)"
        if extendedCode != code { text += " (extended \(extendedCode))" }
        text += ": \(message)"
        if let sql { text += " — in `\(sql.count > 200 ? String(sql.prefix(200)) + "…" : sql)`" }
        return text
    }
}
