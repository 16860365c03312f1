import Foundation
import Testing
import Troupe
import TroupeTestKit

/// Counts `.count` messages and ends once it has counted `expected` of them.
struct Countdown: HandlerAgent {
    struct State: AgentState { var counted = 0 }
    enum Message: Codable, Sendable { case count }
    let expected: Int
    let counted: Recorder<Int>

    func handle(_ message: Message, state: inout State, context: AgentContext<Self>) async throws {
        state.counted += 1
        counted.record(state.counted)
        if state.counted == expected { context.finish() }
    }
}

/// A transient or temporary agent that returned normally has ended for good, and a resume of its run continues
/// where the run was: the agent stays ended instead of starting again and waiting for messages that will never
/// come (which kept a resumed run from ever completing). A graceful stop is no end, and an operator's restart
/// brings an ended agent back.
@Suite(.timeLimit(.minutes(3)))
struct EndedAgentTests {
    static let cases: [(Durability, ChildSpec.Restart)] = [
        (.checkpointed, .transient), (.durable, .transient), (.checkpointed, .temporary), (.durable, .temporary),
    ]

    @Test(arguments: cases)
    func anAgentThatEndedStaysEndedWhenItsRunIsResumed(_ durability: Durability, _ restart: ChildSpec.Restart) async throws {
        let store = InMemoryCheckpointStore()
        let counted = Recorder<Int>()
        func attempt() throws -> (Run, AgentProbe) {
            let blueprint = Blueprint("ending", durability: durability) {
                Child("countdown", Countdown(expected: 2, counted: counted), restart: restart)
            }
            let run = try Run(blueprint, id: "run-countdown", configuration: .test(store: store))
            return (run, AgentProbe(run))
        }

        // Stopped half way: a graceful stop is no end, and the resume starts it again.
        let (first, _) = try attempt()
        try await withRunning(first) {
            try await first.send(Countdown.Message.count, to: "countdown")
            _ = try await counted.wait(forCount: 1)
        }
        let (second, secondProbe) = try attempt()
        try await withRunning(second) {
            _ = try await secondProbe.wait(for: "countdown", .started)
            try await second.send(Countdown.Message.count, to: "countdown")
            let exits = try await secondProbe.wait(for: "countdown", .exited)
            #expect("\(exits[0].kind)" == "exited (normal)")
        }
        #expect(counted.values == [1, 2])

        // Ended: the next resume leaves it ended, without starting it.
        let (third, thirdProbe) = try attempt()
        try await withRunning(third) {
            let exits = try await thirdProbe.wait(for: "countdown", .exited)
            #expect("\(exits[0].kind)" == "exited (normal)")
            #expect(!thirdProbe.events(of: "countdown").contains { if case .started = $0.kind { true } else { false } })
            let children = await third.supervisor.children()
            if restart == .transient {
                #expect(children.first?.status == .exited)
            } else {
                #expect(children.isEmpty, "a temporary agent that ended is removed: \(children)")
            }
        }
        #expect(third.isResumed == true)
        #expect(counted.values == [1, 2])
    }

    /// An operator's restart brings an ended transient agent back from its last checkpoint, and it counts on.
    @Test(arguments: [Durability.checkpointed, .durable])
    func anOperatorsRestartBringsAnEndedAgentBack(_ durability: Durability) async throws {
        let store = InMemoryCheckpointStore()
        let counted = Recorder<Int>()
        func attempt() throws -> (Run, AgentProbe) {
            let blueprint = Blueprint("ending", durability: durability) {
                Child("countdown", Countdown(expected: 1, counted: counted), restart: .transient)
            }
            let run = try Run(blueprint, id: "run-countdown", configuration: .test(store: store))
            return (run, AgentProbe(run))
        }
        let (first, firstProbe) = try attempt()
        try await withRunning(first) {
            try await first.send(Countdown.Message.count, to: "countdown")
            _ = try await firstProbe.wait(for: "countdown", .exited)
        }
        let (second, secondProbe) = try attempt()
        try await withRunning(second) {
            _ = try await secondProbe.wait(for: "countdown", .exited)
            try await second.supervisor.restartChild("countdown")
            _ = try await secondProbe.wait(for: "countdown", .started)
            try await second.send(Countdown.Message.count, to: "countdown")
            _ = try await counted.wait(forCount: 2)
        }
        #expect(counted.values == [1, 2])
        // Restarted and stopped gracefully, it has not ended: the next resume starts it.
        let (third, thirdProbe) = try attempt()
        try await withRunning(third) { _ = try await thirdProbe.wait(for: "countdown", .started) }
    }

    /// A permanent agent's normal return is no end: it is restarted, in the run and after a resume, as before.
    @Test func aPermanentAgentIsNeverRecordedAsEnded() async throws {
        let store = InMemoryCheckpointStore()
        let counted = Recorder<Int>()
        let blueprint = Blueprint("ending", durability: .durable) {
            Child("countdown", Countdown(expected: 1, counted: counted))
        }
        let first = try Run(blueprint, id: "run-countdown", configuration: .test(store: store))
        let firstProbe = AgentProbe(first)
        try await withRunning(first) {
            try await first.send(Countdown.Message.count, to: "countdown")
            _ = try await firstProbe.wait(for: "countdown", .started, count: 2)
        }
        let second = try Run(blueprint, id: "run-countdown", configuration: .test(store: store))
        let probe = AgentProbe(second)
        try await withRunning(second) { _ = try await probe.wait(for: "countdown", .started) }
    }
}
