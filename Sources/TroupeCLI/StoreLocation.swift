import Glibc
import Synchronization
public import Troupe
import TroupeSQLite

/// Where `--database` points, and how to open it.
///
/// A plain path or `sqlite:PATH` is a SQLite file (the default backend, built in). Any other `SCHEME:…` resolves
/// through the openers registered with ``TroupeCommand/register(scheme:_:)``, so a backend in its own module
/// (PostgreSQL, a store for tests) serves every verb without the CLI knowing it.
public struct StoreLocation: Sendable, Hashable {
    /// The URL scheme, or `sqlite` for a plain path.
    public var scheme: String
    /// What `--database` said, unchanged (the form to pass to a child process).
    public var text: String
    /// The part after `SCHEME:` (for SQLite, the file's path).
    public var rest: String
    /// Seconds to wait for a lock held by another process (`--busy-timeout`).
    public var busyTimeout: Duration
    /// Checkpoints kept per agent (`--retain`).
    public var retention: Int
    /// Whether the verb only reads: open without creating, migrating or writing anything.
    public var readOnly = false

    /// Reads `--database`'s value.
    init(_ text: String, busyTimeout: Duration, retention: Int) throws {
        self.text = text
        self.busyTimeout = busyTimeout
        self.retention = retention
        // A scheme is letters (then letters, digits, '+', '-', '.') before a colon: `sqlite:`, `postgres://`.
        // Anything else is a path; write `./data:1.db` for a file whose name has a colon.
        if let colon = text.firstIndex(of: ":"), let first = text.first, first.isLetter,
            text[..<colon].allSatisfy({ $0.isLetter || $0.isNumber || $0 == "+" || $0 == "-" || $0 == "." })
        {
            scheme = text[..<colon].lowercased()
            rest = String(text[text.index(after: colon)...])
            if scheme == "sqlite", rest.hasPrefix("//") { rest.removeFirst(2) }
            if scheme == "file" {  // SQLite's own URI form, kept whole
                scheme = "sqlite"
                rest = text
            }
        } else {
            scheme = "sqlite"
            rest = text
        }
        if scheme == "sqlite", rest.isEmpty {
            throw TroupeError(.invalidSpec, "--database 'sqlite:' names no file; write sqlite:PATH or just PATH.")
        }
    }

    /// `text` without the password of a URL's user (`SCHEME://USER:PASSWORD@HOST…` → `SCHEME://USER@HOST…`), for
    /// messages and listings; anything else unchanged.
    static func withoutPassword(_ text: String) -> String {
        let parts = text.split(separator: "://", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { return text }
        let authority = parts[1].prefix { $0 != "/" && $0 != "?" }
        guard let at = authority.lastIndex(of: "@") else { return text }
        return parts[0] + "://" + authority[..<at].prefix { $0 != ":" } + parts[1][at...]
    }

    /// Whether the location holds a store already (for SQLite: the file exists). Other backends are asked.
    var exists: Bool {
        guard scheme == "sqlite" else { return true }
        return rest.hasPrefix("file:") || access(rest, F_OK) == 0
    }
}

/// Opens stores by scheme.
enum StoreFactory {
    typealias Opener = @Sendable (StoreLocation) async throws -> any OperatorStore

    private static let openers = Mutex<[String: Opener]>([:])

    static func register(_ scheme: String, _ opener: @escaping Opener) {
        openers.withLock { $0[scheme.lowercased()] = opener }
    }

    static func open(_ location: StoreLocation) async throws -> any OperatorStore {
        if let opener = openers.withLock({ $0[location.scheme] }) { return try await opener(location) }
        guard location.scheme == "sqlite" else {
            let known = (["sqlite"] + openers.withLock { Array($0.keys) }).sorted().joined(separator: ", ")
            throw TroupeError(
                .invalidSpec,
                "--database '\(location.text)': this troupe has no '\(location.scheme)' store (it has: \(known)). Use "
                    + "a file path or sqlite:PATH, or a binary built with that backend."
            )
        }
        return try await SQLiteStore(
            path: location.rest,
            configuration: .init(busyTimeout: location.busyTimeout, retention: location.retention, readOnly: location.readOnly)
        )
    }
}

extension TroupeCommand {
    /// Lets `--database SCHEME:…` open a store of your own backend: every verb then works on it.
    ///
    /// ```swift
    /// TroupeCommand.register(scheme: "postgres") { location in try await PostgresStore(url: location.text) }
    /// await TroupeCommand.main()
    /// ```
    public static func register(
        scheme: String,
        _ opener: @escaping @Sendable (StoreLocation) async throws -> any OperatorStore
    ) {
        StoreFactory.register(scheme, opener)
    }
}
