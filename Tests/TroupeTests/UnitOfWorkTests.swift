import FoundationEssentials
import Synchronization
import Testing
import TroupeTestKit

@testable import Troupe

/// A store that fails the next `failures` commits of an agent with a storage error, like a full disk.
final class FlakyStore: CheckpointStore {
    let inner = InMemoryCheckpointStore()
    let failures = Atomic<Int>(0)

    func attach(_ run: RunRecord) async throws -> Bool { try await inner.attach(run) }
    func detach(_ run: RunID, outcome: RunOutcome, error: String?) async {
        await inner.detach(run, outcome: outcome, error: error)
    }
    func claim(_ agent: AgentID, type: String, durability: Durability, incarnation: UInt64) async throws -> Claim {
        try await inner.claim(agent, type: type, durability: durability, incarnation: incarnation)
    }
    func commit(_ commit: Commit) async throws -> [Int64] {
        if commit.agent != nil, failures.load(ordering: .relaxed) > 0 {
            failures.subtract(1, ordering: .relaxed)
            throw TroupeError(.storage, "the disk is full (a test's store)")
        }
        return try await inner.commit(commit)
    }
    func deadLetter(_ letter: DeadLetter) async throws { try await inner.deadLetter(letter) }
    func recordStep(_ agent: AgentID, epoch: UInt64, key: String, result: [UInt8]) async throws {
        try await inner.recordStep(agent, epoch: epoch, key: key, result: result)
    }
    func record(_ event: Event) {}
    var recordsEvents: Bool { false }
}

/// Sends each number to `counter` through a typed address, then crashes once after the send.
struct AddressForwarder: HandlerAgent {
    enum Message: Codable, Sendable { case forward(Int) }
    struct Crash: Error {}

    func handle(_ message: Message, state: inout Stateless, context: AgentContext<Self>) async throws {
        guard case .forward(let n) = message else { return }
        let counter = try context.address(of: "counter", as: Counter.Message.self)
        try await counter.send(.add(n))
        if context.deliveryAttempt == 1 { throw Crash() }
    }
}

/// Checkpoints, catching a failed checkpoint and carrying on; then checkpoints again.
struct Persistent: Agent {
    struct State: AgentState { var step = 0 }
    let done: Recorder<Int>

    func run(state: inout State, context: AgentContext<Self>) async throws {
        guard state.step == 0 else { return }
        state.step = 1
        do { try await context.checkpoint(state) } catch {}
        state.step = 2
        try await context.checkpoint(state)
        done.record(state.step)
        for await _ in context.messages {}
    }
}

@Suite(.timeLimit(.minutes(3)))
struct UnitOfWorkTests {
    @Test func aCommitForgetsTheRecordedStepsOfTheUnitsItFinished() {
        let work = UnitOfWork<Int>(replay: ["m7/get#1": [1], "m8/get#1": [2], "c3/poll#1": [3]])
        #expect(work.nextStep("get", fallback: "c3") == ("c3/get#1", nil))
        work.setScope("m7")
        #expect(work.nextStep("get", fallback: "c3").recorded == [1])
        work.committed(consumed: [7], sequence: 3, signals: [])
        work.setScope("m7")
        #expect(work.nextStep("get", fallback: "c3").recorded == nil, "a finished unit's result was replayed")
        work.setScope("m8")
        #expect(work.nextStep("get", fallback: "c4").recorded == [2], "an unfinished unit's result was lost")
    }

    @Test func aCommitCarriesWhatTheUnitTookOnceAndAFailedOneGivesItBack() {
        let work = UnitOfWork<Int>()
        var none: [Int64] = []
        #expect(work.takeForCommit(consumed: &none).outbox.isEmpty && none.isEmpty)
        work.took(Envelope(1, id: 11))
        work.took(Envelope(2, id: 0))  // a message sent from memory: nothing to remove from the store
        work.took(Envelope(3, id: 13))
        work.tookSignal(5)
        work.stage(Outgoing(recipient: "b", payload: [1], trace: nil) { _ in })
        var consumed: [Int64] = [7]
        let first = work.takeForCommit(consumed: &consumed)
        #expect(consumed == [7, 11, 13])
        #expect(first.outbox.map(\.recipient) == ["b"])
        #expect(first.signals == ["s5"])
        var again: [Int64] = []
        let second = work.takeForCommit(consumed: &again)
        #expect(again.isEmpty && second.outbox.isEmpty && second.signals.isEmpty, "a commit in flight was carried twice")

        work.took(Envelope(4, id: 14))
        work.restoreAfterFailedCommit(signals: first.signals)
        var retried: [Int64] = []
        #expect(work.takeForCommit(consumed: &retried).signals == ["s5"])
        #expect(retried == [11, 13, 14], "the failed commit's messages go back before the later ones")
        work.committed(consumed: retried, sequence: 1, signals: ["s5"])
        var after: [Int64] = []
        _ = work.takeForCommit(consumed: &after)
        #expect(after.isEmpty, "a committed message was carried again")

        work.took(Envelope(5, id: 15))
        _ = work.takeForCommit(consumed: &after)
        work.took(Envelope(6, id: 16))
        #expect(work.abandon().map(\.message) == [5, 6], "an abandoned unit lost a message its commit carried")
        #expect(work.abandon().isEmpty)
    }

    @Test func aCommitFinishesItsMessagesItsStretchAndItsSignals() {
        #expect(Commit.finishedScopes(consumed: [7, 9], sequence: 3, signals: ["s2"]) == ["m7", "m9", "c3", "s2"])
        #expect(Commit.finishedScopes(consumed: [], sequence: 0, signals: []) == ["c0"])
    }

    @Test func aDurableAgentsSendThroughAnAddressWaitsForItsCommit() async throws {
        let seen = Recorder<Int>()
        let blueprint = Blueprint("address", backoff: .none, durability: .durable) {
            Child("forwarder", AddressForwarder())
            Child("counter", Counter(seen: seen))
        }
        let run = try Run(blueprint, configuration: .test())
        try await withRunning(run) {
            try await run.send(AddressForwarder.Message.forward(5), to: "forwarder")
            try await run.send(AddressForwarder.Message.forward(7), to: "forwarder")
            // 7 is handled after 5's second attempt: once it arrives, everything 5 caused has too.
            _ = try await seen.wait(until: { $0.contains(7) })
        }
        // The first attempt at 5 sent before it crashed: that send never happened.
        #expect(seen.values == [5, 7])
    }

    @Test func aCheckpointedAgentsFailedCommitDoesNotCountAgainstTheMessage() async throws {
        let store = FlakyStore()
        let seen = Recorder<Int>()
        let blueprint = Blueprint("flaky", backoff: .none, durability: .checkpointed) {
            Child("counter", Counter(seen: seen), options: AgentOptions(maxDeliveryFailures: 1))
        }
        let run = try Run(blueprint, configuration: .test(store: store))
        try await withRunning(run) {
            _ = try await run.call("counter", timeout: .seconds(60)) { Counter.Message.total($0) }  // started, state committed
            store.failures.store(2, ordering: .relaxed)
            try await run.send(Counter.Message.add(4), to: "counter")
            let total = try await run.call("counter", timeout: .seconds(60)) { Counter.Message.total($0) }
            #expect(total == 4)
        }
        #expect(store.inner.deadLetters.isEmpty, "a message handled fine was dead-lettered: \(store.inner.deadLetters)")
    }

    @Test func aFailedCheckpointLeavesNoGapInTheSequence() async throws {
        let store = FlakyStore()
        let done = Recorder<Int>()
        store.failures.store(1, ordering: .relaxed)
        let run = try Run(Blueprint("gap", durability: .checkpointed) { Child("p", Persistent(done: done)) }, id: "run-gap", configuration: .test(store: store))
        try await withRunning(run) { _ = try await done.wait(forCount: 1) }
        let sequences = store.inner.checkpoints(of: AgentID(run: "run-gap", name: "p")).map(\.sequence)
        #expect(sequences.first == 1, "checkpoints \(sequences): the failed commit used up a sequence number")
    }
}
