import Foundation
import Testing
import Troupe
import TroupeTestKit

/// A person's answer.
struct Decision: Codable, Sendable, Equatable {
    var approve: Bool
}

/// Waits for approval of each draft it is sent; crashes once right after its first signal when `crashOnce` is set.
struct Approver: HandlerAgent {
    struct State: AgentState {
        var decided: [String] = []
    }
    enum Message: Codable, Sendable {
        case draft(String)
        case decided(Reply<[String]>)
    }
    let waiting: Recorder<String>
    let crashOnce: Recorder<Bool>?
    var timeout: Duration?
    /// When set, the first attempt waits for it to be opened before it crashes.
    var gate: Recorder<Bool>? = nil

    struct Crash: Error {}

    func handle(_ message: Message, state: inout State, context: AgentContext<Self>) async throws {
        switch message {
        case .draft(let text):
            waiting.record(text)
            let decision = try await context.signal("approve", as: Decision.self, timeout: timeout)
            if let crashOnce, crashOnce.values.isEmpty {
                crashOnce.record(decision != nil)
                if let gate { _ = try await gate.wait(forCount: 1) }
                throw Crash()
            }
            state.decided.append("\(text): \(decision.map { $0.approve ? "approved" : "rejected" } ?? "timed out")")
        case .decided(let reply):
            reply(state.decided)
        }
    }
}

@Suite(.timeLimit(.minutes(3)))
struct SignalTests {
    static let run: RunID = "run-signal"

    func approverRun(
        _ store: InMemoryCheckpointStore, waiting: Recorder<String>, crashOnce: Recorder<Bool>? = nil, timeout: Duration? = nil,
        gate: Recorder<Bool>? = nil
    ) throws -> Run {
        let approver = Approver(waiting: waiting, crashOnce: crashOnce, timeout: timeout, gate: gate)
        return try Run(
            Blueprint("approval", backoff: .none, durability: .durable) {
                Child("approver", approver, shutdown: .init(graceful: .zero, cancellation: .seconds(5)))
            },
            id: Self.run,
            configuration: .test(store: store)
        )
    }

    func waitingFor(_ run: Run) async -> Waiting? {
        await run.supervisor.children().first { $0.name == "approver" }?.waiting
    }

    /// A wait that outlives its run: the signal sent while no process drives it is applied by the resume, and
    /// the unit that takes it sees it once, even when it crashes after taking it (its retry gets the same one).
    @Test func aSignalSentWhileTheRunIsDownReachesTheResumedWaitExactlyOnce() async throws {
        let store = InMemoryCheckpointStore()
        let firstWaiting = Recorder<String>()
        let first = try approverRun(store, waiting: firstWaiting)
        let began = try await withRunning(first) {
            try await first.send(Approver.Message.draft("hello"), to: "approver")
            _ = try await firstWaiting.wait(forCount: 1)
            var waiting = await waitingFor(first)
            let deadline = ContinuousClock.now + .seconds(30)
            while waiting == nil, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(5))
                waiting = await waitingFor(first)
            }
            #expect(waiting?.what == "signal 'approve'")
            return try #require(waiting?.since)
        }
        // Queued while no process drives the run, then a second one for nobody yet.
        _ = try await store.enqueue(.signal(agent: "approver", name: "approve", value: #"{"approve":true}"#), for: Self.run, origin: nil)
        _ = try await store.enqueue(.signal(agent: "approver", name: "approve", value: #"{"approve":false}"#), for: Self.run, origin: nil)

        let waiting = Recorder<String>()
        let crashOnce = Recorder<Bool>()
        let second = try approverRun(store, waiting: waiting, crashOnce: crashOnce)
        let decided = try await withRunning(second) {
            // The draft is handled again (it was never committed), crashes once after taking the first signal,
            // and is handled a third time: it takes the same signal, not the second one.
            let deadline = ContinuousClock.now + .seconds(30)
            var decided: [String] = []
            while decided.isEmpty, ContinuousClock.now < deadline {
                decided = try await second.call("approver", timeout: .seconds(60)) { Approver.Message.decided($0) }
                if decided.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
            }
            // A new draft takes the signal still waiting.
            try await second.send(Approver.Message.draft("again"), to: "approver")
            while decided.count < 2, ContinuousClock.now < deadline {
                decided = try await second.call("approver", timeout: .seconds(60)) { Approver.Message.decided($0) }
                if decided.count < 2 { try await Task.sleep(for: .milliseconds(10)) }
            }
            return decided
        }
        #expect(crashOnce.values == [true])
        #expect(decided == ["hello: approved", "again: rejected"])
        #expect(began <= Date())
    }

    @Test func aWaitWithATimeoutEndsWithoutASignal() async throws {
        let store = InMemoryCheckpointStore()
        let waiting = Recorder<String>()
        let run = try approverRun(store, waiting: waiting, timeout: .milliseconds(200))
        let decided = try await withRunning(run) {
            try await run.send(Approver.Message.draft("quiet"), to: "approver")
            return try await run.call("approver", timeout: .seconds(60)) { Approver.Message.decided($0) }
        }
        #expect(decided == ["quiet: timed out"])
    }

    /// A unit that timed out and crashed before committing times out again when it runs again, even if a signal
    /// has come since: what its first attempt saw is what it sees.
    @Test func aTimedOutWaitThatRunsAgainTimesOutAgain() async throws {
        let store = InMemoryCheckpointStore()
        let waiting = Recorder<String>(), crashOnce = Recorder<Bool>(), gate = Recorder<Bool>()
        let run = try approverRun(store, waiting: waiting, crashOnce: crashOnce, timeout: .milliseconds(100), gate: gate)
        let decided = try await withRunning(run) {
            try await run.send(Approver.Message.draft("late"), to: "approver")
            #expect(try await crashOnce.wait(forCount: 1) == [false])
            // A signal arrives after the timeout, before the unit's retry.
            let id = try await run.signal("approve", Decision(approve: true), to: "approver")
            let deadline = ContinuousClock.now + .seconds(30)
            while try await store.commands(of: Self.run).first(where: { $0.id == id })?.result == nil {
                try #require(ContinuousClock.now < deadline, "the signal was not applied")
                try await Task.sleep(for: .milliseconds(5))
            }
            gate.record(true)
            var decided: [String] = []
            while decided.isEmpty {
                try #require(ContinuousClock.now < deadline, "the draft was not decided")
                decided = try await run.call("approver", timeout: .seconds(60)) { Approver.Message.decided($0) }
            }
            return decided
        }
        #expect(decided == ["late: timed out"])
    }
}
