import Testing
import Troupe
import TroupeTestKit

/// An idle handler-style agent holds no task; these check that it still behaves as a running agent.
@Suite(.timeLimit(.minutes(3)))
struct PassivationTests {
    /// Waits until the child `name` is listed as passivated.
    /// Polls (every 5 ms, for at most 30 s) until `condition` holds. A tighter spin (a yield per look) kept the
    /// cooperative threads so busy that other suites in the process missed their deadlines.
    func waitUntil(_ what: String, _ condition: () async -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while await !condition() {
            try #require(ContinuousClock.now < deadline, "\(what) did not happen within 30 s")
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    func waitUntilPassivated(_ run: Run, _ name: String) async throws {
        try await waitUntil("'\(name)' passivating") {
            await run.supervisor.children().first(where: { $0.name == name })?.isPassivated == true
        }
    }

    @Test func anIdleAgentPassivatesAndResumesWithItsState() async throws {
        let seen = Recorder<Int>()
        let run = try Run(Blueprint("idle") { Child("counter", Counter(seen: seen)) }, configuration: .test())
        let probe = AgentProbe(run)
        let total = try await withRunning(run) {
            try await waitUntilPassivated(run, "counter")
            try await run.send(Counter.Message.add(5), to: "counter")
            try await seen.wait(forCount: 1)
            try await waitUntilPassivated(run, "counter")  // busy for a moment, then idle again after a long wait
            try await run.send(Counter.Message.add(7), to: "counter")
            return try await run.call("counter", timeout: .seconds(60)) { Counter.Message.total($0) }
        }
        #expect(total == 12)
        // Passivating is not restarting: one incarnation, started once.
        #expect(probe.events(of: "counter").filter { if case .started = $0.kind { true } else { false } }.count == 1)
    }

    @Test func aPassivatedAgentStopsGracefullyWithAFinalCheckpoint() async throws {
        let store = InMemoryCheckpointStore()
        let seen = Recorder<Int>()
        let run = try Run(Blueprint("idle", durability: .checkpointed) { Child("counter", Counter(seen: seen)) },
                          id: "run-p", configuration: .test(store: store))
        let probe = AgentProbe(run)
        try await withRunning(run) {
            try await run.send(Counter.Message.add(3), to: "counter")
            try await seen.wait(forCount: 1)
            try await waitUntilPassivated(run, "counter")
        }
        #expect(probe.events(of: "counter").contains { if case .exited(.stopped) = $0.kind { true } else { false } })
        let latest = try #require(store.latest(of: AgentID(run: "run-p", name: "counter")))
        #expect(String(decoding: latest.state, as: UTF8.self) == #"{"total":3}"#)
    }

    @Test func cancellingAPassivatedAgentEndsIt() async throws {
        let run = try Run(Blueprint("idle") {
            Child("counter", Counter(), shutdown: .init(graceful: .zero, cancellation: .seconds(10)))
        }, configuration: .test())
        let probe = AgentProbe(run)
        let task = Task { try await run.run() }
        try await waitUntilPassivated(run, "counter")
        run.shutdown()  // graceful: .zero goes straight to cancellation
        try await task.value
        #expect(probe.events(of: "counter").contains { if case .exited(.cancelled) = $0.kind { true } else { false } })
    }

    @Test func aPassivatedAgentCanBeTerminatedAndRestarted() async throws {
        let seen = Recorder<Int>()
        let run = try Run(Blueprint("idle") { Child("counter", Counter(seen: seen)) }, configuration: .test())
        let probe = AgentProbe(run)
        let total = try await withRunning(run) {
            try await run.send(Counter.Message.add(4), to: "counter")
            try await seen.wait(forCount: 1)
            try await waitUntilPassivated(run, "counter")
            try await run.supervisor.terminateChild("counter")
            #expect(await run.supervisor.children().first?.status == .stopped)
            try await run.supervisor.restartChild("counter")
            try await run.send(Counter.Message.add(6), to: "counter")
            return try await run.call("counter", timeout: .seconds(60)) { Counter.Message.total($0) }
        }
        #expect(total == 10, "the restarted incarnation resumed from the state the passivated one stopped with")
        #expect(probe.events(of: "counter").filter { if case .started = $0.kind { true } else { false } }.count == 2)
    }

    @Test func manyIdleAgentsHoldNoTasksAndStillAnswer() async throws {
        let run = try Run(Blueprint("many") { Pool("counter", count: 500) { _ in Counter() } }, configuration: .test())
        let answers = try await withRunning(run) {
            try await waitUntil("every member passivating") {
                await run.supervisor.supervisor(named: "counter")?.children().allSatisfy(\.isPassivated) == true
            }
            var answers: [Int] = []
            for member in stride(from: 0, to: 500, by: 50) {
                try await run.send(Counter.Message.add(member), to: "counter-\(member)")
                answers.append(try await run.call("counter-\(member)", timeout: .seconds(60)) { Counter.Message.total($0) })
            }
            return answers
        }
        #expect(answers == Array(stride(from: 0, to: 500, by: 50)))
    }
}
