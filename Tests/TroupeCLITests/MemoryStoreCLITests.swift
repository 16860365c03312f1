import ArgumentParser
import Foundation
import Synchronization
import Testing
import Troupe
@testable import TroupeCLI
import TroupeTestKit
import TroupeTestSupport

/// Counts what it is sent; `finish` ends it for good.
struct Meter: HandlerAgent {
    struct State: AgentState { var count = 0 }
    enum Message: Codable, Sendable {
        case tick
        case poison
        case finish
    }

    func handle(_ message: Message, state: inout State, context: AgentContext<Self>) async throws {
        switch message {
        case .tick: state.count += 1
        case .poison: throw TroupeError(.invalidSpec, "poisoned")
        case .finish: context.finish()
        }
    }
}

/// Counts to three and ends: a one-shot run completes.
struct Once: Agent {
    struct State: AgentState { var count = 0 }
    typealias Message = Never

    func run(state: inout State, context: AgentContext<Self>) async throws {
        while state.count < 3 {
            state.count += 1
            try await context.checkpoint(state)
        }
    }
}

/// Every `troupe` verb served by the in-memory store, a backend the CLI knows only through the store protocols:
/// the CLI needs nothing SQLite-specific.
@Suite(.serialized, .timeLimit(.minutes(4)))
struct MemoryStoreCLITests {
    static let store = InMemoryCheckpointStore(retention: 5, recordsEvents: true)

    static let blueprint = Blueprint("meters", intensity: .init(maxRestarts: 100, within: .seconds(10)), durability: .durable) {
        Child("m", Meter(), restart: .transient)
        Child("n", Meter(), restart: .transient)
    }

    init() {
        let store = Self.store
        TroupeCommand.register(scheme: "memory") { _ in store }
        Catalog.install(
            [
                BlueprintEntry("once", summary: "Counts to three.") { _ in
                    Blueprint("once") { Child("once", Once(), restart: .transient) }
                }
            ],
            services: []
        )
    }

    struct Output {
        var status: Int32
        var out: String
        var err: String
    }

    /// Runs `troupe ARGS --database memory:` in this process.
    func troupe(_ arguments: String...) async -> Output { await troupe(arguments: arguments) }

    /// What an operator's command to `run-live` says once the run applied it: the CLI's own words, or, when its
    /// wait for the run (30 s) ran out on a loaded machine and it said the command is queued, the result the run
    /// recorded afterwards.
    func applied(_ arguments: String...) async throws -> String {
        let output = await troupe(arguments: arguments)
        guard output.status == 0, output.out.contains("is queued") else { return output.out }
        var result = ""
        try await eventually("the run applies '\(arguments.joined(separator: " "))'") {
            guard let last = try await Self.store.commands(of: "run-live").last, let recorded = last.result else { return false }
            result = recorded.message
            return true
        }
        return result
    }

    func troupe(arguments: [String]) async -> Output {
        var status: Int32 = 0
        let (out, err) = await CommandOutput.capturing {
            do {
                var command = try TroupeCommand.parseAsRoot(arguments + ["--database", "memory:test"])
                if var command = command as? any AsyncParsableCommand {
                    try await command.run()
                } else {
                    try command.run()
                }
            } catch {
                status = (error as? ExitCode)?.rawValue ?? TroupeCommand.exitCode(for: error).rawValue
            }
        }
        return Output(status: status, out: out, err: err)
    }

    func json(_ arguments: String...) async throws -> Any {
        var status: Int32 = 0
        let (out, _) = await CommandOutput.capturing {
            do {
                let command = try TroupeCommand.parseAsRoot(arguments + ["--database", "memory:test", "--json"])
                if var command = command as? any AsyncParsableCommand { try await command.run() }
            } catch {
                status = TroupeCommand.exitCode(for: error).rawValue
            }
        }
        #expect(status == 0, "\(arguments)")
        return try JSONSerialization.jsonObject(with: Data(out.utf8))
    }

    @Test func everyVerbWorksOnAStoreTheCLIKnowsOnlyByItsProtocols() async throws {
        // A live run, driven by this process, on the store.
        let live = try Run(Self.blueprint, id: "run-live", configuration: Run.Configuration(store: Self.store))
        let probe = AgentProbe(live)
        let running = Task { try await live.run() }
        try await probe.wait(for: "n", .started)
        for _ in 0..<3 { try await live.send(Meter.Message.tick, to: "m") }
        try await live.send(Meter.Message.poison, to: "n")
        try await probe.wait(for: "n", .deadLettered)

        let ps = await troupe("ps")
        #expect(ps.status == 0 && ps.out.contains("run-live") && ps.out.contains("running"), "\(ps)")
        let status = await troupe("status", "run-live")
        #expect(status.out.contains("blueprint   meters") && status.out.contains("dead letters 1"), "\(status)")
        try await eventually("the tree is published") { await troupe("tree", "run-live").out.contains("#1") }
        let events = await troupe("events", "run-live", "--agent", "m")
        #expect(events.out.contains("started"), "\(events)")
        let noSuchAgent = await troupe("events", "run-live", "--agent", "zz")
        #expect(noSuchAgent.status == 66, "\(noSuchAgent)")
        try await eventually("m has checkpoints") { await troupe("checkpoints", "run-live", "m").out.contains("SEQ") }
        let state = await troupe("checkpoints", "run-live", "m", "--show", "last")
        #expect(state.out.contains("\"count\""), "\(state)")
        let described = await troupe("describe", "run-l", "m")
        #expect(described.status == 0 && described.out.contains("\"count\"") && described.out.contains("agent        m"), "\(described)")
        let letters = await troupe("dead-letters", "run-live")
        #expect(letters.out.contains("poisoned"), "\(letters)")

        // Operators' commands, applied by the run's controller.
        let restart = try await applied("restart", "run-live", "m")
        #expect(restart.contains("restarted from its last checkpoint"), "\(restart)")
        let pause = try await applied("pause", "run-live")
        #expect(pause.contains("paused 2 agents"), "\(pause)")
        #expect(await troupe("ps").out.contains("paused"))
        let unpause = try await applied("unpause", "run-live")
        #expect(unpause.contains("resumed 2 agents"), "\(unpause)")
        let requeue = try await applied("dead-letters", "run-live", "requeue")
        #expect(requeue.contains("requeued 1 messages"), "\(requeue)")
        let unknownAgent = await troupe("restart", "run-live", "nobody")
        #expect(unknownAgent.status == 66, "\(unknownAgent)")
        let refusedRm = await troupe("rm", "run-live")
        #expect(refusedRm.status == 1, "\(refusedRm)")
        let cancel = await troupe("cancel", "run-live", "--grace", "1")
        #expect(cancel.status == 0, "\(cancel)")
        try await running.value
        #expect(await troupe("ps").out.contains("cancelled"))
        let again = await troupe("cancel", "run-live")
        #expect(again.status == 1 && again.err.contains("already ended (cancelled)"), "\(again)")
        #expect(try await Self.store.commands(of: "run-live").count == 5, "a cancel of an ended run was queued")

        // Maintenance on the ended run.
        let sequence = try #require((try await json("checkpoints", "run-live", "m") as? [[String: Any]])?.last?["sequence"] as? Int)
        let fork = try await json("fork", "run-live", "--from", "m@\(sequence)") as? [String: String]
        let forked = try #require(fork?["run"])
        #expect(await troupe("status", forked).out.contains("status      stopped"))
        let prune = await troupe("prune", "--keep", "1")
        #expect(prune.status == 0 && prune.out.contains("deleted"), "\(prune)")
        let purge = await troupe("dead-letters", "run-live", "purge")
        #expect(purge.status == 0, "\(purge)")
        let check = await troupe("db", "check")
        #expect(check.status == 0, "\(check)")
        let rm = await troupe("rm", "run-live", forked)
        #expect(rm.status == 0, "\(rm)")
        #expect(await troupe("status", "run-live").status == 66)

        // `run` and `resume` of a blueprint this binary knows, on the same store.
        let started = await troupe("run", "once", "--id", "run-cli", "--durability", "durable")
        #expect(started.status == 0 && started.out.contains("completed"), "\(started)")
        let resumed = await troupe("resume", "run-cli")
        #expect(resumed.status == 0 && resumed.out.contains("completed"), "\(resumed)")
        let summary = try await json("ps") as? [[String: Any]]
        #expect(summary?.first { $0["id"] as? String == "run-cli" }?["durability"] as? String == "durable")
    }

    func eventually(_ what: String, _ condition: () async throws -> Bool) async throws {
        if try await !poll(within: .seconds(60), condition) { Issue.record("timed out waiting until \(what)") }
    }
}
