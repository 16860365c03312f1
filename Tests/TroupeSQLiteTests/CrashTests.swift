import Foundation
import Testing
import TroupeTestSupport
import Troupe
import TroupeTestKit
import TroupeSQLite

/// Kills a durable counting pipeline with SIGKILL at random moments, resumes it each time, and checks that every
/// number was counted exactly once.
@Suite(.timeLimit(.minutes(5)))
struct CrashTests {
    @Test func killNineAtRandomMomentsLosesNothingAndCountsNothingTwice() async throws {
        let directory = try TemporaryDirectory()
        let database = directory.file()
        let count = 200_000
        let outcome = try await CrashLoop.run(database: database, run: "run-crash", count: count, rounds: 15)
        #expect(outcome.kills >= 3, "the pipeline finished before it could be killed a few times; raise the count")

        try await withStore(database) { store in
            let last = try #require(try await store.checkpoints(of: AgentID(run: "run-crash", name: "counter")).last)
            let state = try JSONDecoder().decode(CrashLoop.CounterState.self, from: Data(last.state))
            #expect(state.count == count)
            #expect(state.sum == count * (count + 1) / 2)
            #expect(state.duplicates == 0)
            #expect(state.gaps == 0)
            #expect(try await store.pendingMessages(of: "run-crash").isEmpty)
            #expect(try await store.read { try $0.texts("PRAGMA integrity_check") } == ["ok"])
            // One lease per owner: every start that took the run, and nothing else.
            let leases = try await store.read { try $0.scalar("SELECT lease_token FROM runs WHERE id = 'run-crash'") }
            #expect(leases == Int64(outcome.owners))
        }
    }
}
