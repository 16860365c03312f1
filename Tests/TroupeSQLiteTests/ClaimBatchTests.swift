import Synchronization
import Testing
import Troupe
import TroupeSQLite
import TroupeTestKit

/// A durable loop agent that stamps its state with its own number in its first incarnation; every incarnation
/// reports the stamp it started from (-1 before the first), commits, and waits until it is stopped (an agent that
/// ended would stay ended when the run is resumed).
struct Stamper: Agent {
    struct State: AgentState { var stamp = -1 }
    let number: Int
    let seen: Recorder<[Int]>
    /// Numbers whose next `setUp` fails, once each.
    let failing: Failing

    func setUp(context: AgentContext<Self>) async throws {
        if failing.take(number) { throw Failing.Planned() }
    }

    func run(state: inout State, context: AgentContext<Self>) async throws {
        seen.record([number, state.stamp])
        state.stamp = number
        try await context.checkpoint(state)
        for try await _ in context.messages {}
    }
}

final class Failing: Sendable {
    struct Planned: Error {}
    private let numbers: Mutex<Set<Int>>
    init(_ numbers: Set<Int> = []) { self.numbers = Mutex(numbers) }
    func take(_ number: Int) -> Bool { numbers.withLock { $0.remove(number) != nil } }
}

/// Starts claim their state ahead, a batch of a few thousand agents per store call, while the previous batch
/// starts: each agent must still get exactly its own claim, whatever the batches and whatever fails on the way.
@Suite(.timeLimit(.minutes(4)))
struct ClaimBatchTests {
    /// More agents than three claim batches.
    let agents = 9_000

    func blueprint(_ seen: Recorder<[Int]>, failing: Failing = Failing()) -> Blueprint {
        Blueprint("stamps", backoff: .none, durability: .durable) {
            for number in 0..<agents {
                Child("stamper-\(number)", Stamper(number: number, seen: seen, failing: failing), restart: .transient)
            }
        }
    }

    /// Runs the blueprint until every agent has reported `count` times in all.
    func run(_ blueprint: Blueprint, _ seen: Recorder<[Int]>, on store: SQLiteStore, count: Int) async throws {
        let run = try Run(blueprint, id: "run-stamps", configuration: .test(store))
        try await withRunning(run) { try await seen.wait(forCount: count, timeout: .seconds(60)) }
    }

    @Test func aResumeOfManyDurableAgentsGivesEachItsOwnCheckpoint() async throws {
        let directory = try TemporaryDirectory()
        try await withStore(directory.file()) { store in
            let first = Recorder<[Int]>()
            try await run(blueprint(first), first, on: store, count: agents)
            #expect(first.values.allSatisfy { $0[1] == -1 })
            let resumed = Recorder<[Int]>()
            try await run(blueprint(resumed), resumed, on: store, count: agents)
            let wrong = resumed.values.filter { $0[0] != $0[1] }
            #expect(wrong.isEmpty, "agents resumed from another agent's checkpoint: \(wrong.prefix(5))")
            #expect(Set(resumed.values.map { $0[0] }).count == agents)
        }
    }

    @Test func startsThatFailInTheMiddleOfABatchLeaveTheOthersTheirOwnClaims() async throws {
        let directory = try TemporaryDirectory()
        try await withStore(directory.file()) { store in
            let first = Recorder<[Int]>()
            try await run(blueprint(first), first, on: store, count: agents)
            // One start fails early in the first batch, one in the second, one at the very end: each is restarted
            // (transient, failed), and the agents after it start from their own checkpoints all the same.
            let resumed = Recorder<[Int]>()
            let failing = Failing([17, 5_000, agents - 1])
            try await run(blueprint(resumed, failing: failing), resumed, on: store, count: agents)
            let wrong = resumed.values.filter { $0[0] != $0[1] }
            #expect(wrong.isEmpty, "agents resumed from another agent's checkpoint: \(wrong.prefix(5))")
            #expect(Set(resumed.values.map { $0[0] }).count == agents)
        }
    }
}
