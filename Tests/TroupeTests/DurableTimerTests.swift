import Foundation
import Testing
import Troupe
import TroupeTestKit

/// Ticks every `interval`, with a checkpoint after each tick.
struct SleepyTicker: Agent {
    struct State: AgentState { var ticks = 0 }
    let interval: Duration
    let sleeping: Recorder<Date>
    let woke: Recorder<Date>

    func run(state: inout State, context: AgentContext<Self>) async throws {
        while true {
            sleeping.record(Date())
            try await context.sleep(for: interval)
            woke.record(Date())
            state.ticks += 1
            try await context.checkpoint(state)
        }
    }
}

/// A checkpointed or durable agent's sleep is a durable timer: after a stop and a resume, the interrupted sleep
/// ends at the deadline it had, not a whole interval after the resume.
@Suite(.timeLimit(.minutes(3)))
struct DurableTimerTests {
    @Test(arguments: [Durability.checkpointed, .durable])
    func aResumedSleepWakesAtItsOriginalDeadline(_ durability: Durability) async throws {
        let store = InMemoryCheckpointStore()
        let interval = Duration.seconds(10)
        func run(_ sleeping: Recorder<Date>, _ woke: Recorder<Date>) throws -> Run {
            try Run(
                Blueprint("ticker", durability: durability) { Child("ticker", SleepyTicker(interval: interval, sleeping: sleeping, woke: woke)) },
                id: "run-ticker", configuration: .test(store: store)
            )
        }
        let firstSleeping = Recorder<Date>(), firstWoke = Recorder<Date>()
        let first = try run(firstSleeping, firstWoke)
        // Stopped while it sleeps its first interval.
        let started = try await withRunning(first) { try await firstSleeping.wait(forCount: 1)[0] }
        #expect(firstWoke.values.isEmpty)
        // The resume comes 6 s into the 10 s interval (a loaded machine may take seconds to stop the first run).
        while Date() < started.addingTimeInterval(6) { try await Task.sleep(for: .milliseconds(20)) }

        let sleeping = Recorder<Date>(), woke = Recorder<Date>()
        let second = try run(sleeping, woke)
        let resumed = Date()
        let wokeAt = try await withRunning(second) { try await woke.wait(forCount: 1)[0] }
        #expect(second.isResumed == true)
        // At the first deadline (10 s after the first sleep began), not 10 s after the resume.
        #expect(wokeAt >= started.addingTimeInterval(10 - 0.02), "woke \(wokeAt.timeIntervalSince(started)) s after the sleep began")
        #expect(wokeAt.timeIntervalSince(resumed) < 8.5, "woke \(wokeAt.timeIntervalSince(resumed)) s after the resume: the timer started over")
    }

    @Test func anEphemeralAgentsSleepIsNotRecorded() async throws {
        let store = InMemoryCheckpointStore()
        let sleeping = Recorder<Date>(), woke = Recorder<Date>()
        let ticker = SleepyTicker(interval: .milliseconds(10), sleeping: sleeping, woke: woke)
        let run = try Run(Blueprint("ticker", durability: .ephemeral) { Child("ticker", ticker) }, id: "run-e", configuration: .test(store: store))
        try await withRunning(run) { _ = try await woke.wait(forCount: 3) }
        #expect(store.checkpoints(of: AgentID(run: "run-e", name: "ticker")).isEmpty)
    }
}
