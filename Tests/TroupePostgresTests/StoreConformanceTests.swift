import Foundation
import Testing
import Troupe
import TroupePostgres
import TroupeTestKit

extension StoreConformance.Backend {
    /// `PostgresStore` on a database of its own, created for the check and dropped after it. Each open is a new
    /// store instance (its own connections) on the same database.
    ///
    /// The heartbeat is 5 s, not the default 1 s: a store fences itself after four silent intervals and then drops
    /// its runs' writes (events too), which is right for a worker but not what these checks are about. In the
    /// suite's loaded first minute, with 28 checks' stores at once, the log-retention check once waited 45 s in vain
    /// for its last event: a writer kept past its fence drops exactly those. Fencing has tests of its own
    /// (`PartitionTests`, `PostgresStoreTests`).
    static func postgres(_ database: TestDatabase) -> Self {
        Self(name: "PostgreSQL") {
            return {
                let store = try await PostgresStore(url: database.url, configuration: .init(heartbeat: .seconds(5)))
                return StoreConformance.Handle(
                    store: store,
                    pendingMessages: { try await store.pendingMessages(of: $0) },
                    checkpoints: { try await store.checkpoints(of: $0) },
                    deadLetters: { try await store.deadLetterMessages(of: $0) },
                    close: { await store.close() }
                )
            }
        }
    }
}

/// The store contract, on a real PostgreSQL server.
@Suite(.enabled(if: TestServer.enabled, "set TROUPE_TEST_POSTGRES (.ci/run starts a server)"), .timeLimit(.minutes(4)))
struct PostgresStoreConformanceTests {
    @Test(arguments: StoreConformance.checks)
    func postgres(check: StoreConformance.Check) async throws {
        try await TestServer.withDatabase { database in
            try await check.run(on: .postgres(database))
        }
    }
}
