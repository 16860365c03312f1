import FoundationEssentials
import Testing
import Troupe
import TroupeTestKit

/// Forwards numbers to `counter`; crashes once, after sending, on the number it is told to.
struct Forwarder: HandlerAgent {
    enum Message: Codable, Sendable { case forward(Int) }
    struct Crash: Error {}
    var crashOn: Int = 0

    func handle(_ message: Message, state: inout Stateless, context: AgentContext<Self>) async throws {
        guard case .forward(let n) = message else { return }
        try await context.send(Counter.Message.add(n), to: "counter")
        if n == crashOn, context.deliveryAttempt == 1 { throw Crash() }
    }
}

/// A loop agent that sends 1…3 to `counter` and checkpoints; its first incarnation crashes before checkpointing.
struct Burst: Agent {
    struct State: AgentState { var sent = false }
    struct Crash: Error {}

    func run(state: inout State, context: AgentContext<Self>) async throws {
        guard !state.sent else { return }
        for n in 1...3 { try await context.send(Counter.Message.add(n), to: "counter") }
        if context.incarnation == 1 { throw Crash() }
        state.sent = true
        try await context.checkpoint(state)
    }
}

@Suite(.timeLimit(.minutes(3)))
struct DurableTests {
    @Test func aCrashedHandlersSendsNeverHappen() async throws {
        let seen = Recorder<Int>()
        let blueprint = Blueprint("durable", durability: .durable) {
            Child("forwarder", Forwarder(crashOn: 3))
            Child("counter", Counter(seen: seen))
        }
        let run = try Run(blueprint, id: "run-d1", configuration: .test())
        try await withRunning(run) {
            for n in 1...4 { try await run.send(Forwarder.Message.forward(n), to: "forwarder") }
            _ = try await seen.wait(forCount: 4)
            let total = try await run.call("counter", timeout: .seconds(60)) { Counter.Message.total($0) }
            #expect(total == 10)
        }
        // 3 was sent twice by the forwarder (before and after its crash) but counted once.
        #expect(seen.values.sorted() == [1, 2, 3, 4])
    }

    @Test func aLoopAgentsSendsWaitForItsCheckpoint() async throws {
        let seen = Recorder<Int>()
        let blueprint = Blueprint("durable", durability: .durable) {
            Child("burst", Burst(), restart: .transient)
            Child("counter", Counter(seen: seen))
        }
        let run = try Run(blueprint, id: "run-d2", configuration: .test())
        try await withRunning(run) {
            _ = try await seen.wait(forCount: 3)
        }
        #expect(seen.values == [1, 2, 3])
    }

    @Test func twoRunsCannotDriveOneRunID() async throws {
        let store = InMemoryCheckpointStore()
        let blueprint = Blueprint("durable", durability: .durable) { Child("counter", Counter()) }
        let first = try Run(blueprint, id: "run-d4", configuration: .test(store: store))
        try await withRunning(first) {
            try await first.send(Counter.Message.add(1), to: "counter")  // returns once the run has attached
            let second = try Run(blueprint, id: "run-d4", configuration: .test(store: store))
            await #expect(throws: TroupeError(.leaseHeld, "")) { try await second.run() }
        }
    }

    @Test func aPoisonMessageLeavesTheDurableInbox() async throws {
        let store = InMemoryCheckpointStore()
        let blueprint = Blueprint("durable", intensity: .init(maxRestarts: 10, within: .seconds(10)), durability: .durable) {
            Child("counter", Counter())
        }
        let run = try Run(blueprint, id: "run-d5", configuration: .test(store: store))
        let total = try await withRunning(run) {
            try await run.send(Counter.Message.add(-1), to: "counter")
            try await run.send(Counter.Message.add(7), to: "counter")
            return try await run.call("counter", timeout: .seconds(60)) { Counter.Message.total($0) }
        }
        #expect(total == 7)
        #expect(store.deadLetters.count == 1)
        #expect(store.deadLetters.first?.messageID != nil)
        #expect(store.pendingMessages(of: "run-d5").isEmpty)
    }
}
