import Synchronization
import Testing
import Troupe
import TroupeTestKit

/// Counts each agent's `setUp`s and `tearDown`s, records start order, and can be slow to set up or to stop.
struct Tracked: Agent {
    enum Message: Codable, Sendable { case crash }
    struct Boom: Error {}

    let name: String
    let log: Recorder<String>
    /// Held shut while the agent must not finish stopping; `nil` stops at once.
    var slowStop: Gate? = nil
    /// How long `setUp` takes.
    var setUpTime: Duration = .zero
    /// Whether it ignores graceful stop requests (ends only when cancelled).
    var ignoresStop = false

    func setUp(context: AgentContext<Self>) async throws {
        if setUpTime > .zero { try await Task.sleep(for: setUpTime) }
        log.record("setUp \(name)")
    }

    func run(state: inout Stateless, context: AgentContext<Self>) async throws {
        if ignoresStop {
            while !Task.isCancelled { try await Task.sleep(for: .seconds(60)) }
            return
        }
        for await message in context.messages {
            if case .crash = message { throw Boom() }
        }
        if let slowStop { try await context.offload { slowStop.wait() } }
    }

    func tearDown(_ resources: Void, reason: ExitReason, context: AgentContext<Self>) async {
        log.record("tearDown \(name)")
    }
}

extension Recorder<String> {
    func count(_ prefix: String) -> Int { values.count { $0 == prefix } }
}

@Suite(.timeLimit(.minutes(3)))
struct OTPSemanticsTests {
    /// Lets an operator call that old, reentrant code would have run at once show itself: waits until `done`
    /// says so or a short while has passed. The assertions that follow hold either way.
    func giveItAChance(_ done: @escaping @Sendable () -> Bool) async {
        let clock = ContinuousClock()
        let deadline = clock.now + .milliseconds(300)
        while !done(), clock.now < deadline { try? await Task.sleep(for: .milliseconds(5)) }
    }

    /// A `restForOne` pair whose `a` has just crashed while `b` is slow to stop: `operatorCall` runs while the
    /// supervisor stops `b`, then `b` is let go. Returns the call's outcome, with the run still running.
    func duringAGroupRestart(
        log: Recorder<String>,
        _ operatorCall: @escaping @Sendable (Supervisor) async throws -> Void,
        then check: (Run, AgentProbe, Result<Void, any Error>) async throws -> Void
    ) async throws {
        let gate = Gate()
        let blueprint = Blueprint("rest", strategy: .restForOne, backoff: .none) {
            Child("a", Tracked(name: "a", log: log))
            Child("b", Tracked(name: "b", log: log, slowStop: gate))
        }
        let run = try Run(blueprint, configuration: .test())
        let probe = AgentProbe(run)
        try await withRunning(run) {
            try await probe.wait(for: "b", .started)
            try await run.send(Tracked.Message.crash, to: "a")
            // The supervisor is now stopping b, which holds on until the gate opens.
            try await probe.wait(for: "a", .failed)
            let finished = Atomic<Bool>(false)
            let supervisor = run.supervisor
            let call = Task {
                defer { finished.store(true, ordering: .relaxed) }
                try await operatorCall(supervisor)
            }
            await giveItAChance { finished.load(ordering: .relaxed) || log.count("setUp a") >= 2 }
            gate.release()
            gate.release()  // and for the restarted b's stop at shutdown
            let outcome = await call.result
            try await probe.wait(for: "b", .started, count: 2)
            try await check(run, probe, outcome)
        }
    }

    @Test func anOperatorRestartDuringAGroupRestartNeverLeavesTwoIncarnations() async throws {
        let log = Recorder<String>()
        try await duringAGroupRestart(log: log, { try await $0.restartChild("a") }) { run, _, outcome in
            if case .failure(let error) = outcome {
                #expect((error as? TroupeError)?.code == .childRestarting)
            }
            let count = await run.supervisor.count()
            #expect(count.active == 2)
            let live = log.count("setUp a") - log.count("tearDown a")
            #expect(live == 1, "\(log.values)")
        }
        #expect(log.count("setUp a") == log.count("tearDown a"), "\(log.values)")
        #expect(log.count("setUp b") == log.count("tearDown b"), "\(log.values)")
    }

    @Test func terminatingAChildDuringItsGroupRestartIsNotUndone() async throws {
        let log = Recorder<String>()
        try await duringAGroupRestart(log: log, { try await $0.terminateChild("a") }) { run, _, outcome in
            try outcome.get()
            let a = await run.supervisor.children().first { $0.name == "a" }
            #expect(a?.status == .stopped)
            #expect(log.count("setUp a") == log.count("tearDown a"), "\(log.values)")
        }
    }

    @Test func concurrentOperatorRestartsStartOneIncarnationAtATime() async throws {
        let log = Recorder<String>()
        let run = try Run(Blueprint("r") { Child("a", Tracked(name: "a", log: log)) }, configuration: .test())
        let probe = AgentProbe(run)
        try await withRunning(run) {
            try await probe.wait(for: "a", .started)
            let supervisor = run.supervisor
            let first = Task { try await supervisor.restartChild("a") }
            let second = Task { try await supervisor.restartChild("a") }
            let results = [await first.result, await second.result]
            for case .failure(let error) in results {
                #expect((error as? TroupeError)?.code == .childRestarting)
            }
            #expect(log.count("setUp a") - log.count("tearDown a") == 1, "\(log.values)")
            #expect(await run.supervisor.count().active == 1)
        }
    }

    @Test func aTerminatedTemporaryChildIsRemovedAndItsNameFree() async throws {
        let log = Recorder<String>()
        let run = try Run(Blueprint("t") { Child("idle", Idler()) }, configuration: .test())
        let probe = AgentProbe(run)
        try await withRunning(run) {
            try await probe.wait(for: "idle", .started)
            try await run.supervisor.startChild(Child("temp", Tracked(name: "temp", log: log), restart: .temporary))
            try await run.supervisor.terminateChild("temp")
            #expect(await run.supervisor.children().map(\.name) == ["idle"])
            try await run.supervisor.startChild(Child("temp", Tracked(name: "temp", log: log), restart: .temporary))
            #expect(await run.supervisor.children().map(\.name) == ["idle", "temp"])
        }
    }

    @Test(arguments: [RestartStrategy.oneForAll, .restForOne])
    func aTemporarySiblingOfAGroupRestartIsRemoved(strategy: RestartStrategy) async throws {
        let log = Recorder<String>()
        let blueprint = Blueprint("g", strategy: strategy, backoff: .none) {
            Child("a", Tracked(name: "a", log: log))
            Child("temp", Tracked(name: "temp", log: log), restart: .temporary)
            Child("c", Tracked(name: "c", log: log))
        }
        let run = try Run(blueprint, configuration: .test())
        let probe = AgentProbe(run)
        try await withRunning(run) {
            try await probe.wait(for: "c", .started)
            try await run.send(Tracked.Message.crash, to: "a")
            try await probe.wait(for: "c", .started, count: 2)
            #expect(await run.supervisor.children().map(\.name) == ["a", "c"])
            #expect(log.count("setUp temp") == 1)
        }
    }

    @Test func countDoesNotCountAChildWaitingOutItsBackoff() async throws {
        let clock = ManualClock()
        let log = Recorder<String>()
        let backoff = Backoff.exponential(initial: .seconds(5), maximum: .seconds(60), jitter: 0)
        let blueprint = Blueprint("c", backoff: backoff) {
            Child("a", Tracked(name: "a", log: log))
            Child("b", Tracked(name: "b", log: log))
            Child("c", Tracked(name: "c", log: log))
        }
        let run = try Run(blueprint, configuration: .test(clock: clock))
        let probe = AgentProbe(run)
        try await withRunning(run) {
            try await probe.wait(for: "c", .started)
            try await run.send(Tracked.Message.crash, to: "a")
            try await run.send(Tracked.Message.crash, to: "b")
            try await probe.wait(for: "b", .restarting)
            try await probe.wait(for: "a", .restarting)
            #expect(await run.supervisor.count() == ChildCount(specs: 3, active: 1, supervisors: 0, workers: 3))
            clock.advance(by: .seconds(5))
            try await probe.wait(for: "b", .started, count: 2)
            try await probe.wait(for: "a", .started, count: 2)
            #expect(await run.supervisor.count().active == 3)
        }
    }

    @Test func childrenStartInOrderEvenWhenTheFirstIsSlow() async throws {
        let log = Recorder<String>()
        let blueprint = Blueprint("o", strategy: .oneForAll, intensity: .init(maxRestarts: 100, within: .seconds(60)), backoff: .none) {
            Child("a", Tracked(name: "a", log: log, setUpTime: .milliseconds(20)))
            Child("b", Tracked(name: "b", log: log))
            Child("c", Tracked(name: "c", log: log))
        }
        let run = try Run(blueprint, configuration: .test())
        let probe = AgentProbe(run)
        try await withRunning(run) {
            try await probe.wait(for: "c", .started)
            for round in 1...10 {
                try await run.send(Tracked.Message.crash, to: "c")
                try await probe.wait(for: "c", .started, count: round + 1)
            }
        }
        let starts = log.values.filter { $0.hasPrefix("setUp") }.map { String($0.dropFirst(6)) }
        #expect(starts == Array(repeating: ["a", "b", "c"], count: 11).flatMap { $0 })
    }

    @Test func aChildStoppedByCancellationIsReportedAsKilledNotStopped() async throws {
        let log = Recorder<String>()
        let blueprint = Blueprint("k") {
            Child("polite", Tracked(name: "polite", log: log))
            Child("deaf", Tracked(name: "deaf", log: log, ignoresStop: true), shutdown: .init(graceful: .milliseconds(20), cancellation: .seconds(5)))
        }
        let run = try Run(blueprint, configuration: .test())
        let probe = AgentProbe(run)
        try await withRunning(run) {
            try await probe.wait(for: "deaf", .started)
            try await run.supervisor.terminateChild("deaf")
            try await run.supervisor.terminateChild("polite")
        }
        #expect(probe.events(of: "deaf").contains { if case .killed = $0.kind { true } else { false } })
        #expect(!probe.events(of: "deaf").contains { if case .stopped = $0.kind { true } else { false } })
        #expect(probe.events(of: "deaf").contains { if case .exited(.cancelled) = $0.kind { true } else { false } })
        #expect(probe.events(of: "polite").contains { if case .stopped = $0.kind { true } else { false } })
        #expect(probe.events(of: "polite").contains { if case .exited(.stopped) = $0.kind { true } else { false } })
    }
}

/// A checkpointed counter; `Adder2` reads a newer state version than `Adder1` wrote.
struct Adder1: HandlerAgent {
    struct State: AgentState { var total = 0 }
    enum Message: Codable, Sendable { case add(Int) }
    func handle(_ message: Message, state: inout State, context: AgentContext<Self>) async throws {
        if case .add(let n) = message { state.total += n }
    }
}

struct Adder2: HandlerAgent {
    typealias State = Adder1.State
    typealias Message = Adder1.Message
    static var stateVersion: Int { 2 }
    func handle(_ message: Message, state: inout State, context: AgentContext<Self>) async throws {}
}

@Suite(.timeLimit(.minutes(4)))
struct QuarantineTests {
    @Test func aQuarantinedAgentRefusesMessagesSayingWhy() async throws {
        let store = InMemoryCheckpointStore()
        let first = try Run(Blueprint("q", durability: .checkpointed) { Child("adder", Adder1()) }, id: "run-q", configuration: .test(store: store))
        try await withRunning(first) {
            try await first.send(Adder1.Message.add(3), to: "adder")
            // Stopped before it handled the message, the adder would leave no checkpoint (CI saw that on a loaded
            // machine), and the second run would have nothing to quarantine.
            let deadline = ContinuousClock.now + .seconds(40)
            while store.latest(of: AgentID(run: "run-q", name: "adder"))?.state != Array(#"{"total":3}"#.utf8),
                ContinuousClock.now < deadline
            {
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        try #require(store.latest(of: AgentID(run: "run-q", name: "adder"))?.state == Array(#"{"total":3}"#.utf8))

        let second = try Run(Blueprint("q", durability: .checkpointed) { Child("adder", Adder2(), options: .init(mailboxCapacity: 1)) }, id: "run-q", configuration: .test(store: store))
        let probe = AgentProbe(second)
        try await withRunning(second) {
            try await probe.wait(for: "adder", .quarantined)
            // More sends than the mailbox holds: none may block.
            for _ in 0..<3 {
                let error = await #expect(throws: TroupeError.self) { try await second.send(Adder1.Message.add(1), to: "adder") }
                #expect(error?.code == .quarantined)
                #expect(error?.message.contains("quarantined") == true)
            }
        }
    }
}

@Suite(.timeLimit(.minutes(3)))
struct EventSinkTests {
    @Test func aSlowEventSinkHoldsUpNoAgent() async throws {
        let gate = Gate()
        let first = Atomic<Bool>(true)
        let seen = Atomic<Int>(0)
        let run = try Run(Blueprint("slow-sink") { Child("counter", Counter()) }, configuration: .test())
        // The sink stalls on its first event until the test lets it go, as a terminal nobody reads would.
        run.addEventSink { _ in
            if first.exchange(false, ordering: .relaxed) { gate.wait() }
            seen.add(1, ordering: .relaxed)
        }
        let total = try await withRunning(run) {
            for n in 1...1_000 { try await run.send(Counter.Message.add(n), to: "counter") }
            let total = try await run.call("counter", timeout: .seconds(60)) { Counter.Message.total($0) }
            gate.release()
            return total
        }
        #expect(total == 500_500)
        // run() returned only after the sink had every event.
        #expect(seen.load(ordering: .relaxed) >= 3)
    }
}

/// Handles notes; finishes when told to.
struct Finisher: HandlerAgent {
    enum Message: Codable, Sendable { case note(String), done }
    let seen: Recorder<String>
    func handle(_ message: Message, state: inout Stateless, context: AgentContext<Self>) async throws {
        switch message {
        case .note(let text): seen.record(text)
        case .done: context.finish()
        }
    }
}

@Suite(.timeLimit(.minutes(3)))
struct FinishTests {
    @Test(arguments: [Durability.ephemeral, .checkpointed, .durable])
    func aHandlerAgentThatFinishesEndsNormallyAndATransientOneStaysEnded(durability: Durability) async throws {
        let seen = Recorder<String>()
        let run = try Run(
            Blueprint("finish", durability: durability) { Child("f", Finisher(seen: seen), restart: .transient) },
            configuration: .test()
        )
        let probe = AgentProbe(run)
        try await withRunning(run) {
            try await run.send(Finisher.Message.note("a"), to: "f")
            try await run.send(Finisher.Message.done, to: "f")
            try await probe.wait(for: "f", .exited)
            #expect(probe.events(of: "f").contains { if case .exited(.normal) = $0.kind { true } else { false } })
            // The exit event comes from the agent; the supervisor acts on it a moment later.
            let deadline = ContinuousClock.now + .seconds(10)
            while await run.supervisor.children().first?.status != .exited, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(5))
            }
            #expect(await run.supervisor.children().first?.status == .exited)
            #expect(await run.supervisor.count().active == 0)
        }
        #expect(seen.values == ["a"])
        #expect(probe.events(of: "f").filter { if case .started = $0.kind { true } else { false } }.count == 1)
    }

    @Test func aPermanentAgentThatFinishesIsRestarted() async throws {
        let seen = Recorder<String>()
        let run = try Run(Blueprint("finish", backoff: .none) { Child("f", Finisher(seen: seen)) }, configuration: .test())
        let probe = AgentProbe(run)
        try await withRunning(run) {
            try await run.send(Finisher.Message.done, to: "f")
            try await run.send(Finisher.Message.note("after"), to: "f")
            try await seen.wait(forCount: 1)
            try await probe.wait(for: "f", .started, count: 2)
        }
        #expect(seen.values == ["after"])
    }
}
