import Testing
import TroupeTestKit

/// The store contract, on the in-memory store.
@Suite(.timeLimit(.minutes(4)))
struct InMemoryStoreConformanceTests {
    @Test(arguments: StoreConformance.checks)
    func inMemoryStore(check: StoreConformance.Check) async throws {
        try await check.run(on: .inMemory)
    }
}
