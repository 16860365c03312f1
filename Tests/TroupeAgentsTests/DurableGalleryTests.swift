import Testing
import Troupe
import TroupeAgents
import TroupeTestKit

@Suite(.timeLimit(.minutes(3)))
struct DurableGalleryTests {
    @Test func countingCountsEveryNumberOnceWhenTheRelayIsRestartedMidStream() async throws {
        let store = InMemoryCheckpointStore()
        let done = Recorder<Counting.Counter.State>()
        let run = try Run(Counting.blueprint(count: 2_000) { done.record($0) }, configuration: Run.Configuration(store: store, logger: quiet))
        let probe = AgentProbe(run)
        let state = try await withRunning(run) {
            _ = try await probe.wait(for: "relay", .started)
            // An operator's restart mid-stream: whatever the relay had not committed is handled again, once.
            try await run.supervisor.restartChild("relay")
            return try await done.wait(forCount: 1, timeout: .seconds(90))[0]
        }
        #expect(state.count == 2_000)
        #expect(state.sum == 2_000 * 2_001 / 2)
        #expect(state.duplicates == 0)
        #expect(state.gaps == 0)
    }

    @Test func fleetWorkersCountWhatTheyHandle() async throws {
        let store = InMemoryCheckpointStore()
        let run = try Run(
            Blueprint("fleet", durability: .durable) { Pool("worker", Fleet.Worker(), count: 50) },
            id: "run-fleet",
            configuration: Run.Configuration(store: store, logger: quiet)
        )
        try await withRunning(run) {
            for _ in 0..<100 { try await run.send(Fleet.Worker.Message.work, to: "worker") }
        }
        let handled = (0..<50).compactMap { store.latest(of: AgentID(run: "run-fleet", name: "worker-\($0)")) }.count
        #expect(handled == 50)  // round-robin: every worker got two, and committed
        #expect(store.pendingMessages(of: "run-fleet").isEmpty)
    }
}
