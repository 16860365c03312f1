import Foundation
import Testing
import Troupe
import TroupeTestKit
import HelloAgentsAgents

@Suite(.timeLimit(.minutes(1)))
struct GreeterTests {
    /// The greeter greets `count` times, checkpointing each; a resume of the same run finds it done and
    /// greets no more.
    @Test func greetsAndResumesWhereItWas() async throws {
        let store = InMemoryCheckpointStore()
        let greeter = AgentID(run: "run-hello", name: "greeter")
        for attempt in 1...2 {
            let run = try Run(Greeter.blueprint(count: 3, interval: .milliseconds(1)), id: "run-hello", configuration: .init(store: store))
            let probe = AgentProbe(run)
            // The probe's waits end at a deadline, throwing what they saw instead of hanging.
            try await withRunning(run) { _ = try await probe.wait(for: "greeter", .exited, timeout: .seconds(30)) }
            #expect(run.isResumed == (attempt == 2))
            let saved = try #require(store.latest(of: greeter))
            #expect(try JSONDecoder().decode(Greeter.State.self, from: Data(saved.state)).greetings == 3)
        }
    }

    /// Each greeting is a checkpoint, as the probe sees it.
    @Test func eachGreetingIsCheckpointed() async throws {
        let run = try Run(Greeter.blueprint(count: 2, interval: .milliseconds(1)), configuration: .init(checkpointEvents: true))
        let probe = AgentProbe(run)
        try await withRunning(run) {
            let events = try await probe.wait(for: "greeter", .checkpointed, count: 2, timeout: .seconds(30))
            #expect(events.count == 2)
        }
    }
}
