import Foundation
import Testing
import TroupeTestSupport
import Troupe
import TroupeSQLite
import TroupeTestKit

extension StoreConformance.Backend {
    /// `SQLiteStore` on a fresh database: a WAL file in a temporary directory, or an in-memory database (shared
    /// with the store's reader through SQLite's shared cache). Each open is a new store instance on the same data.
    /// - Parameter directory: Where WAL files go (each check's data in a directory of its own inside it); `nil`
    ///   for an in-memory database.
    static func sqlite(in directory: ScratchDirectory?) -> Self {
        let inMemory = directory == nil
        return Self(name: inMemory ? "SQLite in memory" : "SQLite WAL file") {
            let path =
                directory.map { $0.file("\(UUID().uuidString)/troupe.db") }
                ?? "file:troupe-conformance-\(UUID().uuidString)?mode=memory&cache=shared"
            // An in-memory database lives while a connection holds it: keep one store open for the whole check.
            let keeper: SQLiteStore? = inMemory ? try await SQLiteStore(path: path) : nil
            return {
                let store = try await SQLiteStore(path: path)
                return StoreConformance.Handle(
                    store: store,
                    pendingMessages: { try await store.pendingMessages(of: $0) },
                    checkpoints: { try await store.checkpoints(of: $0) },
                    deadLetters: { try await store.deadLetterMessages(of: $0) },
                    close: {
                        await store.close()
                        _ = keeper
                    }
                )
            }
        }
    }
}

/// The store contract, on SQLite in memory and on a WAL file.
@Suite(.timeLimit(.minutes(4)))
struct SQLiteStoreConformanceTests {
    @Test(arguments: StoreConformance.checks)
    func sqliteWALFile(check: StoreConformance.Check) async throws {
        let scratch = try ScratchDirectory("troupe-conformance-")
        try await check.run(on: .sqlite(in: scratch))
        withExtendedLifetime(scratch) {}
    }

    @Test(arguments: StoreConformance.checks)
    func sqliteInMemory(check: StoreConformance.Check) async throws {
        try await check.run(on: .sqlite(in: nil))
    }
}
