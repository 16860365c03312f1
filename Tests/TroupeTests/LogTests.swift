import Logging
import Testing
import Troupe
import TroupeTestKit

/// An agent that logs one line at each of three levels for each message.
struct Chatty: HandlerAgent {
    enum Message: Codable, Sendable { case say(String) }
    let seen: Recorder<String>

    func handle(_ message: Message, state: inout Stateless, context: AgentContext<Self>) async throws {
        guard case .say(let text) = message else { return }
        context.logger.debug("debug \(text)")
        context.logger.info("info \(text)", metadata: ["order": "42"])
        context.logger.error("error \(text)")
        seen.record(text)
    }
}

/// Agents' log lines reach the run's event log (`troupe logs`) from the stored level up, whatever the level of the
/// run's own logger.
@Suite(.timeLimit(.minutes(3)))
struct LogTests {
    func lines(storedLogLevel: Logger.Level?) async throws -> [EventRecord] {
        let store = InMemoryCheckpointStore(recordsEvents: true)
        let seen = Recorder<String>()
        var configuration = Run.Configuration.test(store: store)
        configuration.storedLogLevel = storedLogLevel
        let run = try Run(Blueprint("chatter") { Child("chatty", Chatty(seen: seen)) }, configuration: configuration)
        try await withRunning(run) {
            try await run.send(Chatty.Message.say("hello"), to: "chatty")
            try await seen.wait(forCount: 1)
        }
        return try await store.events(of: run.id, since: 0, agent: "chatty", limit: 100).filter { $0.event == "log" }
    }

    @Test func linesFromTheStoredLevelUpAreKeptWithTheirMetadata() async throws {
        // The run's logger (`.test()`) prints nothing below critical; the stored lines do not depend on it.
        let kept = try await lines(storedLogLevel: .info)
        #expect(kept.map(\.detail) == ["info info hello order=42", "error error hello"])
        #expect(kept.allSatisfy { $0.agent == "chatty" && $0.incarnation == 1 })
        #expect(try await lines(storedLogLevel: .debug).count == 3)
        #expect(try await lines(storedLogLevel: nil).isEmpty)
    }
}
