import Testing
import Troupe
import TroupeTestKit

/// Counts ticks on the run's clock and keeps the count in its state.
struct Ticker: Agent {
    struct State: AgentState { var ticks = 0 }
    let ticks: Recorder<Int>

    func run(state: inout State, context: AgentContext<Self>) async throws {
        while true {
            try await context.sleep(for: .seconds(1))
            state.ticks += 1
            ticks.record(state.ticks)
        }
    }
}

@Suite(.timeLimit(.minutes(3)))
struct ShutdownTests {
    @Test func childrenStopInReverseStartOrder() async throws {
        // Graceful stops that a starved machine cannot overrun (CI saw the default 5 s pass at the suite's start,
        // and "third" was cancelled instead of stopped): this test is about the order.
        let patient = ChildSpec.Shutdown(graceful: .seconds(40), cancellation: .seconds(5))
        let run = try Run(Blueprint("order") {
            Child("first", Idler(), shutdown: patient)
            Child("second", Idler(), shutdown: patient)
            Blueprint("inner") { Child("third", Idler(), shutdown: patient) }
        }, configuration: .test())
        let probe = AgentProbe(run)
        try await withRunning(run) {
            try await probe.wait(for: "third", .started)
        }
        let stopped = probe.events.compactMap { event -> String? in
            if case .stopped = event.kind { event.name } else { nil }
        }
        #expect(stopped == ["third", "inner", "second", "first"], "\(probe.events.map { "\($0.name) \($0.kind)" })")
    }

    @Test func aGracefulStopCheckpointsTheFinalState() async throws {
        let clock = ManualClock()
        let store = InMemoryCheckpointStore()
        let ticks = Recorder<Int>()
        let run = try Run(Blueprint("ticker", durability: .checkpointed) { Child("ticker", Ticker(ticks: ticks)) },
                          id: "run-t", configuration: .test(clock: clock, store: store))
        try await withRunning(run) {
            for tick in 1...3 {
                await clock.waitForSleepers(1)
                clock.advance(by: .seconds(1))
                try await ticks.wait(forCount: tick)
            }
            await clock.waitForSleepers(1)
        }
        // The ticker never called checkpoint(); the engine saved its state when it stopped, mid-sleep.
        let latest = try #require(store.latest(of: AgentID(run: "run-t", name: "ticker")))
        #expect(String(decoding: latest.state, as: UTF8.self) == #"{"ticks":3}"#)
    }

    @Test func aLoopAgentStopsPromptlyWhenCancelledMidSleep() async throws {
        let clock = ManualClock()
        let ticks = Recorder<Int>()
        let run = try Run(Blueprint("ticker") {
            Child("ticker", Ticker(ticks: ticks), shutdown: .init(graceful: .zero, cancellation: .seconds(5)))
        }, configuration: .test(clock: clock))
        let probe = AgentProbe(run)
        try await withRunning(run) { await clock.waitForSleepers(1) }
        // graceful: .zero skips the graceful rung: the task is cancelled mid-sleep and ends at once.
        let exits = probe.events(of: "ticker").compactMap { event -> ExitReason? in
            if case .exited(let reason) = event.kind { reason } else { nil }
        }
        #expect(exits.count == 1)
        #expect(exits.first.map { if case .cancelled = $0 { true } else { false } } == true)
        #expect(ticks.values.isEmpty)
    }

    @Test func aChildThatIgnoresCancellationIsAbandonedNotAwaited() async throws {
        let clock = ManualClock()
        let gate = Gate()
        defer { gate.release() }
        // Stopped in reverse order: "deaf" first, so the first deadline on the clock is its own.
        let run = try Run(Blueprint("deaf") {
            Child("polite", Idler())
            Child("deaf", Idler(mode: .ignoreCancellation(gate)), shutdown: .init(graceful: .seconds(1), cancellation: .seconds(1)))
        }, configuration: .test(clock: clock))
        let probe = AgentProbe(run)
        let task = Task { try await run.run() }
        try await probe.wait(for: "deaf", .started)
        try await probe.wait(for: "polite", .started)
        run.shutdown()
        await clock.waitForSleepers(1)  // graceful deadline
        clock.advance(by: .seconds(1))
        await clock.waitForSleepers(1)  // cancellation deadline
        clock.advance(by: .seconds(1))
        try await task.value
        #expect(probe.events(of: "deaf").contains { if case .abandoned = $0.kind { true } else { false } })
        #expect(probe.events(of: "polite").contains { if case .stopped = $0.kind { true } else { false } })
    }

    @Test func shutdownBeforeTheRunStartsEndsItRightAfterStart() async throws {
        let run = try Run(Blueprint("early") { Child("idle", Idler()) }, configuration: .test())
        run.shutdown()
        try await run.run()
    }

    @Test func cancellingTheRunStopsEveryChild() async throws {
        let run = try Run(Blueprint("cancel") { Child("a", Idler()); Child("b", Idler()) }, configuration: .test())
        let probe = AgentProbe(run)
        let task = Task { try await run.run() }
        try await probe.wait(for: "b", .started)
        task.cancel()
        try await task.value
        #expect(probe.events(of: "a").contains { if case .exited(.cancelled) = $0.kind { true } else { false } })
        #expect(probe.events(of: "b").contains { if case .exited(.cancelled) = $0.kind { true } else { false } })
    }
}

import ServiceLifecycle

@Suite(.timeLimit(.minutes(3)))
struct ServiceLifecycleTests {
    @Test func aServiceGroupsGracefulShutdownStopsTheRunCleanly() async throws {
        let store = InMemoryCheckpointStore()
        let seen = Recorder<Int>()
        let run = try Run(Blueprint("service", durability: .checkpointed) {
            Child("counter", Counter(seen: seen))
            Child("idle", Idler())
        }, id: "run-s", configuration: .test(store: store))
        let probe = AgentProbe(run)
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(services: [.init(service: run)], logger: quiet)
        )
        let task = Task { try await group.run() }
        try await run.send(Counter.Message.add(9), to: "counter")
        try await seen.wait(forCount: 1)
        try await probe.wait(for: "idle", .started)
        await group.triggerGracefulShutdown()
        try await task.value
        for name in ["counter", "idle"] {
            #expect(probe.events(of: name).contains { if case .exited(.stopped) = $0.kind { true } else { false } })
        }
        let latest = try #require(store.latest(of: AgentID(run: "run-s", name: "counter")))
        #expect(String(decoding: latest.state, as: UTF8.self) == #"{"total":9}"#)
    }
}

@Suite(.timeLimit(.minutes(3)))
struct EventStreamTests {
    @Test func theEventSequenceEndsWhenTheRunEnds() async throws {
        let run = try Run(Blueprint("events") { Child("idle", Idler()) }, configuration: .test())
        let events = run.events()
        let reader = Task {
            var names: [String] = []
            for await event in events { names.append("\(event.name) \(event.kind)") }
            return names
        }
        let probe = AgentProbe(run)
        try await withRunning(run) { try await probe.wait(for: "idle", .started) }
        let names = await reader.value  // returns only because the sequence finished
        #expect(names.first == "events started")
        #expect(names.contains("idle stopped"))
    }
}
