// Testing article: agents begin
import Troupe
import TroupeTestKit

/// Doubles the numbers it is sent and reports each result; a zero crashes it.
struct Doubler: HandlerAgent {
    struct State: AgentState { var handled = 0 }
    enum Message: Codable, Sendable { case double(Int) }
    struct Zero: Error {}
    let results: Recorder<Int>

    func handle(_ message: Message, state: inout State, context: AgentContext<Self>) async throws {
        guard case .double(let n) = message, n != 0 else { throw Zero() }
        state.handled += 1
        results.record(n * 2)
    }
}

/// Reports a reading every `interval`, sleeping on the run's clock in between.
struct Poller: Agent {
    let interval: Duration
    let readings: Recorder<Int>

    func run(state: inout Stateless, context: AgentContext<Self>) async throws {
        var reading = 0
        while !context.isStopping {
            reading += 1
            readings.record(reading)
            try await context.sleep(for: interval)
        }
    }
}
// Testing article: agents end

import Foundation
import Testing

@Suite(.timeLimit(.minutes(3)))
struct TestingArticleTests {
    // Testing article: crash test begin
    @Test func aPoisonMessageIsSetAsideAndTheCountSurvivesTheCrashes() async throws {
        let results = Recorder<Int>()
        let store = InMemoryCheckpointStore()
        let blueprint = Blueprint("doubling", backoff: .none, durability: .checkpointed) {
            Child("doubler", Doubler(results: results))
        }
        let run = try Run(blueprint, id: "run-doubling", configuration: .init(store: store))
        let probe = AgentProbe(run)  // before the run starts: it misses nothing
        try await withRunning(run) {
            for n in [2, 0, 5] { try await run.send(Doubler.Message.double(n), to: "doubler") }
            // 0 crashes the doubler three times (maxDeliveryFailures), then becomes a dead letter.
            try await probe.wait(for: "doubler", .deadLettered)
            _ = try await results.wait(forCount: 2)
        }
        #expect(results.values == [4, 10])
        #expect(probe.events(of: "doubler").filter { if case .started = $0.kind { true } else { false } }.count == 4)
        let latest = try #require(store.latest(of: AgentID(run: "run-doubling", name: "doubler")))
        #expect(String(decoding: latest.state, as: UTF8.self) == #"{"handled":2}"#)
    }
    // Testing article: crash test end

    // Testing article: clock test begin
    @Test func thePollerReportsOncePerInterval() async throws {
        let clock = ManualClock()
        let readings = Recorder<Int>()
        let blueprint = Blueprint("polling") {
            Child("poller", Poller(interval: .seconds(60), readings: readings))
        }
        let run = try Run(blueprint, configuration: .init(clock: clock))
        try await withRunning(run) {
            _ = try await readings.wait(forCount: 1)
            for _ in 0..<3 {
                await clock.waitForSleepers(1)  // the poller sleeps…
                clock.advance(by: .seconds(60))  // …and an hour of polling takes no time at all
            }
            _ = try await readings.wait(forCount: 4)
        }
        #expect(readings.values.prefix(4) == [1, 2, 3, 4])
    }
    // Testing article: clock test end

    @Test func theArticleShowsThisCodeVerbatim() throws {
        let here = URL(fileURLWithPath: #filePath)
        let root = here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let source = try String(contentsOf: here, encoding: .utf8)
        let article = try String(
            contentsOf: root.appendingPathComponent("Sources/TroupeTestKit/Documentation.docc/TestingAgents.md"),
            encoding: .utf8
        )
        for part in ["agents", "crash test", "clock test"] {
            let begin = try #require(source.range(of: "// Testing article: \(part) begin\n"))
            let end = try #require(source.range(of: "    // Testing article: \(part) end", range: begin.upperBound..<source.endIndex)
                ?? source.range(of: "// Testing article: \(part) end", range: begin.upperBound..<source.endIndex))
            let code = String(source[begin.upperBound..<end.lowerBound])
            // The article shows the tests without the suite's indentation.
            let shown = code.split(separator: "\n", omittingEmptySubsequences: false)
                .map { $0.hasPrefix("    ") && part != "agents" ? String($0.dropFirst(4)) : String($0) }
                .joined(separator: "\n")
            #expect(article.contains("```swift\n" + shown + "```"), "TestingAgents.md's \(part) differs from \(here.lastPathComponent)")
        }
    }
}
