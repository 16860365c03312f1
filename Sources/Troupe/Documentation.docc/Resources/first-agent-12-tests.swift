import Foundation
import Testing
import Troupe
import TroupeTestKit
import HelloAgentsAgents

@Suite(.timeLimit(.minutes(1)))
struct GreeterTests {
    /// The tally counts every greeting once. A second run with the same id and store resumes: it finds both agents
    /// done, and nothing is greeted or counted again.
    @Test func theTallyCountsEveryGreetingOnce() async throws {
        let store = InMemoryCheckpointStore()
        for attempt in 1...2 {
            let run = try Run(Greeter.blueprint(count: 3, interval: .milliseconds(1)), id: "run-hello", configuration: .init(store: store))
            let probe = AgentProbe(run)
            // The probe's waits end at a deadline, throwing what they saw instead of hanging.
            try await withRunning(run) { _ = try await probe.wait(for: "tally", .exited, timeout: .seconds(30)) }
            #expect(run.isResumed == (attempt == 2))
            let saved = try #require(store.latest(of: AgentID(run: "run-hello", name: "tally")))
            #expect(try JSONDecoder().decode(Tally.State.self, from: Data(saved.state)).greetings == 3)
        }
    }

    /// The tally on its own: a test can send it messages from outside the run, as the greeter would.
    @Test func theTallyEndsOnceItHasCountedWhatItExpects() async throws {
        let run = try Run(Blueprint("tally-alone") { Child(tally, Tally(expected: 2), restart: .transient) })
        let probe = AgentProbe(run)
        try await withRunning(run) {
            try await run.send(.greeted(1), to: tally)
            try await run.send(.greeted(2), to: tally)
            let exits = try await probe.wait(for: "tally", .exited, timeout: .seconds(30))
            #expect(exits.count == 1)
        }
    }
}
