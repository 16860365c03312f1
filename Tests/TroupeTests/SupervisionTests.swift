import Testing
import Troupe
import TroupeTestKit

@Suite(.timeLimit(.minutes(3)))
struct SupervisionTests {
    @Test func aRestartedHandlerAgentResumesFromItsLastState() async throws {
        let seen = Recorder<Int>()
        let run = try Run(Blueprint("resume", backoff: .none) { Child("counter", Counter(seen: seen)) }, configuration: .test())
        let probe = AgentProbe(run)
        let total = try await withRunning(run) {
            for n in 1...5 { try await run.send(Counter.Message.add(n), to: "counter") }
            try await run.send(Counter.Message.add(-1), to: "counter")  // poison: crashes the agent
            try await run.send(Counter.Message.add(100), to: "counter")
            try await seen.wait(forCount: 6)
            return try await run.call("counter", timeout: .seconds(60)) { Counter.Message.total($0) }
        }
        #expect(total == 115)
        // Three crashes (each a restart that resumed from 15, not from 0), then the message was set aside.
        #expect(probe.events(of: "counter").filter { if case .started = $0.kind { true } else { false } }.count == 4)
        #expect(probe.events(of: "counter").contains { if case .deadLettered(_, 3) = $0.kind { true } else { false } })
    }

    @Test func aPoisonMessageBecomesADeadLetterAndTheRestAreHandled() async throws {
        let seen = Recorder<String>()
        let store = InMemoryCheckpointStore()
        let run = try Run(Blueprint("poison", backoff: .none) { Child("echo", Echo(seen: seen)) }, configuration: .test(store: store))
        let probe = AgentProbe(run)
        try await withRunning(run) {
            try await run.send(Echo.Message.note("before"), to: "echo")
            try await run.send(Echo.Message.crash, to: "echo")
            try await run.send(Echo.Message.note("after"), to: "echo")
            try await seen.wait(forCount: 2)
            try await probe.wait(for: "echo", .deadLettered)
        }
        #expect(seen.values == ["before", "after"])
        #expect(store.deadLetters.count == 1)
        let letter = try #require(store.deadLetters.first)
        #expect(letter.failures == 3)
        #expect(letter.error == "boom")
        #expect(letter.agent.name == "echo")
        #expect(String(decoding: letter.message, as: UTF8.self).contains("crash"))
    }

    @Test func queuedMessagesSurviveACrashInOrder() async throws {
        let seen = Recorder<String>()
        let run = try Run(Blueprint("order", backoff: .none) { Child("echo", Echo(seen: seen)) }, configuration: .test())
        let probe = AgentProbe(run)
        try await withRunning(run) {
            let echo = try run.address(of: "echo", as: Echo.Message.self)
            try await echo.send(contentsOf: (0..<50).map { .note("\($0)") })
            try await echo.send(.crashOnce)
            try await echo.send(contentsOf: (50..<100).map { .note("\($0)") })
            try await seen.wait(forCount: 101)
            try await probe.wait(for: "echo", .started, count: 2)
        }
        #expect(seen.values == (0..<50).map { "\($0)" } + ["survived"] + (50..<100).map { "\($0)" })
    }

    @Test func checkpointedAgentsResumeFromTheStore() async throws {
        let store = InMemoryCheckpointStore()
        let seen = Recorder<Int>()
        let blueprint = Blueprint("store", backoff: .none, durability: .checkpointed) {
            Child("counter", Counter(seen: seen))
        }
        let run = try Run(blueprint, id: "run-1", configuration: .test(store: store))
        let total = try await withRunning(run) {
            for n in [10, 20, -1, 30] { try await run.send(Counter.Message.add(n), to: "counter") }
            try await seen.wait(forCount: 3)
            return try await run.call("counter", timeout: .seconds(60)) { Counter.Message.total($0) }
        }
        #expect(total == 60)
        let latest = try #require(store.latest(of: AgentID(run: "run-1", name: "counter")))
        #expect(String(decoding: latest.state, as: UTF8.self) == #"{"total":60}"#)
        #expect(latest.epoch == 4, "three crashes: the fourth incarnation wrote last")
    }

    @Test func restartFromInitialStateStartsOver() async throws {
        let seen = Recorder<Int>()
        let blueprint = Blueprint("fresh", backoff: .none) {
            Child("counter", Counter(seen: seen), options: AgentOptions(restartFrom: .initialState, maxDeliveryFailures: 1))
        }
        let run = try Run(blueprint, configuration: .test())
        let total = try await withRunning(run) {
            for n in [10, 20, -1, 5] { try await run.send(Counter.Message.add(n), to: "counter") }
            try await seen.wait(forCount: 3)
            return try await run.call("counter", timeout: .seconds(60)) { Counter.Message.total($0) }
        }
        #expect(total == 5)
    }

    @Test(arguments: [RestartStrategy.oneForOne, .oneForAll, .restForOne])
    func strategiesRestartTheRightSiblings(strategy: RestartStrategy) async throws {
        let seen = Recorder<String>()
        let blueprint = Blueprint("siblings", strategy: strategy, backoff: .none) {
            Child("a", Idler())
            Child("b", Echo(seen: seen))
            Child("c", Idler())
        }
        let run = try Run(blueprint, configuration: .test())
        let probe = AgentProbe(run)
        let children = try await withRunning(run) {
            for name in ["a", "b", "c"] { try await probe.wait(for: name, .started) }
            try await run.send(Echo.Message.crashOnce, to: "b")
            try await seen.wait(forCount: 1)
            return await run.supervisor.children()
        }
        let incarnations = Dictionary(uniqueKeysWithValues: children.map { ($0.name, $0.incarnation) })
        let expected: [String: UInt64] =
            switch strategy {
            case .oneForAll: ["a": 2, "b": 2, "c": 2]
            case .restForOne: ["a": 1, "b": 2, "c": 2]
            default: ["a": 1, "b": 2, "c": 1]
            }
        #expect(incarnations == expected)
    }

    @Test func restartTypesDecideWhatHappensAfterANormalExit() async throws {
        let blueprint = Blueprint("types", intensity: .init(maxRestarts: 1_000, within: .seconds(60)), backoff: .none) {
            Child("transient", Idler(mode: .returnAtOnce), restart: .transient)
            Child("temporary", Idler(mode: .returnAtOnce), restart: .temporary)
            Child("permanent", Idler(mode: .returnAtOnce), restart: .permanent)
            Child("failing-transient", Idler(mode: .failAtOnce), restart: .transient)
        }
        let run = try Run(blueprint, configuration: .test())
        let probe = AgentProbe(run)
        let children = try await withRunning(run) {
            try await probe.wait(for: "permanent", .started, count: 3)
            try await probe.wait(for: "failing-transient", .started, count: 3)
            return await run.supervisor.children()
        }
        let byName = Dictionary(uniqueKeysWithValues: children.map { ($0.name, $0) })
        #expect(byName["temporary"] == nil, "a temporary child is removed")
        #expect(byName["transient"]?.status == .exited)
        #expect(byName["transient"]?.incarnation == 1)
        #expect(probe.events(of: "transient").contains { if case .exited(.normal) = $0.kind { true } else { false } })
        #expect(byName["permanent"]?.incarnation ?? 0 >= 3, "a permanent child is restarted even after a normal exit")
        #expect(byName["failing-transient"]?.incarnation ?? 0 >= 3, "a transient child is restarted after a failure")
    }

    @Test func escalationTravelsUpAThreeLevelTree() async throws {
        let once = RestartIntensity(maxRestarts: 1, within: .seconds(60))
        let blueprint = Blueprint("root", intensity: once, backoff: .none) {
            Child("steady", Idler())
            Blueprint("middle", intensity: once, backoff: .none) {
                Blueprint("leaf", intensity: once, backoff: .none) {
                    Child("crasher", Idler(mode: .failAtOnce))
                }
            }
        }
        let run = try Run(blueprint, configuration: .test())
        let probe = AgentProbe(run)
        await #expect(throws: TroupeError(.escalated, "")) { try await run.run() }
        // leaf gives up twice per middle incarnation, middle twice, then root.
        #expect(probe.events(of: "leaf").filter { if case .escalated = $0.kind { true } else { false } }.count == 4)
        #expect(probe.events(of: "middle").filter { if case .escalated = $0.kind { true } else { false } }.count == 2)
        #expect(probe.events(of: "root").contains { if case .escalated = $0.kind { true } else { false } })
        // The root stopped its other child before failing.
        #expect(probe.events(of: "steady").contains { if case .stopped = $0.kind { true } else { false } })
    }

    @Test func backoffDelaysTheRestartOnTheRunsClock() async throws {
        let clock = ManualClock()
        let seen = Recorder<String>()
        let backoff = Backoff.exponential(initial: .seconds(2), maximum: .seconds(60), jitter: 0)
        let run = try Run(Blueprint("backoff", backoff: backoff) { Child("echo", Echo(seen: seen)) }, configuration: .test(clock: clock))
        let probe = AgentProbe(run)
        try await withRunning(run) {
            try await run.send(Echo.Message.crashOnce, to: "echo")
            let restarting = try await probe.wait(for: "echo", .restarting)
            guard case .restarting(let delay, 1) = restarting.first?.kind else {
                Issue.record("expected a first restart")
                return
            }
            #expect(delay == .seconds(2))
            await clock.waitForSleepers(1)
            #expect(await run.supervisor.children().first?.status == .restarting)
            #expect(seen.values.isEmpty)
            clock.advance(by: .seconds(2))
            try await seen.wait(forCount: 1)
        }
        #expect(seen.values == ["survived"])
    }

    @Test func duplicateNamesAreRefusedWhenTheRunIsBuilt() {
        #expect(throws: TroupeError(.duplicateName, "")) {
            _ = try Run(Blueprint("dupes") {
                Child("worker", Idler())
                Blueprint("inner") { Child("worker", Idler()) }
            }, configuration: .test())
        }
    }
}
