import MetricsTestKit
import Testing
import Troupe
import TroupeTestKit

/// The engine's metrics, recorded into a run's own factory: exact counts of what happened.
@Suite(.timeLimit(.minutes(3)))
struct MetricsTests {
    @Test func aRunRecordsMessagesCrashesRestartsAndDeadLetters() async throws {
        let metrics = TestMetrics()
        let seen = Recorder<String>()
        var configuration = Run.Configuration.test()
        configuration.metrics = metrics
        let run = try Run(Blueprint("metrics", backoff: .none) { Child("echo", Echo(seen: seen)) }, configuration: configuration)
        let probe = AgentProbe(run)
        try await withRunning(run) {
            for note in ["a", "b", "c"] { try await run.send(Echo.Message.note(note), to: "echo") }
            try await run.send(Echo.Message.crash, to: "echo")  // crashes it three times, then is a dead letter
            try await run.send(Echo.Message.note("d"), to: "echo")
            try await seen.wait(forCount: 4)
            try await probe.wait(for: "echo", .deadLettered)
        }
        let echo = [("agent_type", "Echo")]
        // Five messages went in; four were handled (the poison one never was) and the poison one failed three times.
        #expect(try metrics.expectCounter("troupe_messages_sent_total", echo).totalValue == 5)
        #expect(try metrics.expectCounter("troupe_messages_handled_total", echo).totalValue == 4)
        #expect(try metrics.expectTimer("troupe_handler_duration_seconds", echo).values.count == 4 + 3)
        #expect(try metrics.expectCounter("troupe_dead_letters_total", echo).totalValue == 1)
        #expect(try metrics.expectCounter("troupe_agent_exits_total", [("reason", "crashed")]).totalValue == 3)
        #expect(try metrics.expectCounter("troupe_restarts_total", [("reason", "crashed")]).totalValue == 3)
        // The lease gauge went up while the run ran and down when it ended.
        let lease = try metrics.expectGauge("troupe_lease_held", [("run", run.id.rawValue)])
        #expect(lease.values.first == 1 && lease.lastValue == 0)
    }
}
