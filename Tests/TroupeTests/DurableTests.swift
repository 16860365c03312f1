import FoundationEssentials
import Testing
import Troupe
import TroupeTestKit

/// Forwards numbers to `counter`; crashes once, after sending, on the number it is told to.
struct Forwarder: Agent {
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

@Suite(.timeLimit(.minutes(1)))
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
            _ = await seen.wait(forCount: 4)
            let total = try await run.call("counter", timeout: .seconds(5)) { Counter.Message.total($0) }
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
            _ = await seen.wait(forCount: 3)
        }
        #expect(seen.values == [1, 2, 3])
    }

    @Test func messagesAcceptedBeforeTheProcessDiedAreHandledOnResume() async throws {
        let store = InMemoryCheckpointStore()
        let blueprint = Blueprint("durable", durability: .durable) { Child("counter", Counter()) }
        let first = try Run(blueprint, id: "run-d3", configuration: .test(store: store))
        #expect(first.isResumed == nil)
        try await withRunning(first) {
            try await first.send(Counter.Message.add(5), to: "counter")
            #expect(first.isResumed == false)
        }
        // Messages a dead process had stored but not handled.
        let payloads = try [Counter.Message.add(10), .add(20)].map { Array(try JSONEncoder().encode($0)) }
        _ = try await store.commit(Commit(run: "run-d3", agent: nil, epoch: 0, sent: payloads.map { ("counter", $0) }))

        let second = try Run(blueprint, id: "run-d3", configuration: .test(store: store))
        let total = try await withRunning(second) {
            try await second.call("counter", timeout: .seconds(5)) { Counter.Message.total($0) }
        }
        #expect(second.isResumed == true)
        #expect(total == 35)
        #expect(store.pendingMessages(of: "run-d3").isEmpty)
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
            return try await run.call("counter", timeout: .seconds(5)) { Counter.Message.total($0) }
        }
        #expect(total == 7)
        #expect(store.deadLetters.count == 1)
        #expect(store.deadLetters.first?.messageID != nil)
        #expect(store.pendingMessages(of: "run-d5").isEmpty)
    }
}

/// Charges through an "external service" inside a durable step, then crashes once after it.
struct Biller: Agent {
    struct State: AgentState { var charged = 0 }
    enum Message: Codable, Sendable { case bill(Int), total(Reply<Int>) }
    struct Crash: Error {}
    let service: Recorder<String>

    func handle(_ message: Message, state: inout State, context: AgentContext<Self>) async throws {
        switch message {
        case .bill(let amount):
            let receipt = try await context.step("charge") { step in
                service.record(step.idempotencyKey)
                return amount * 100
            }
            if context.deliveryAttempt == 1 { throw Crash() }
            state.charged += receipt
        case .total(let reply):
            reply(state.charged)
        }
    }
}

@Suite(.timeLimit(.minutes(1)))
struct DurableStepTests {
    @Test func aCompletedStepIsReplayedAfterACrashNotCalledAgain() async throws {
        let service = Recorder<String>()
        let store = InMemoryCheckpointStore()
        let blueprint = Blueprint("billing", durability: .durable) { Child("biller", Biller(service: service)) }
        let run = try Run(blueprint, id: "run-steps", configuration: .test(store: store))
        let total = try await withRunning(run) {
            try await run.send(Biller.Message.bill(3), to: "biller")
            try await run.send(Biller.Message.bill(4), to: "biller")
            return try await run.call("biller", timeout: .seconds(5)) { Biller.Message.total($0) }
        }
        #expect(total == 700)
        // One call per bill, though each bill's handler ran twice.
        #expect(service.values.count == 2)
        #expect(Set(service.values).count == 2)
    }
}
