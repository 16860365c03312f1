import Foundation
import ServiceLifecycle
import Testing
import TroupeTestSupport
import Troupe
import TroupeSQLite
import TroupeTestKit
import Logging

/// A durable adder, embedded in this test process as a user's own service would embed it.
struct Tally: HandlerAgent {
    struct State: AgentState { var total = 0 }
    enum Message: Codable, Sendable {
        case add(Int)
        case total(Reply<Int>)
    }

    func handle(_ message: Message, state: inout State, context: AgentContext<Self>) async throws {
        switch message {
        case .add(let n): state.total += n
        case .total(let reply): reply(state.total)
        }
    }
}

/// Operators steer a run embedded in any process, not only one started by `troupe run`.
@Suite(.timeLimit(.minutes(4)))
struct EmbeddedRunTests: CLIHarness {
    /// The suite instance's own directory, removed with the instance when its test ends.
    let scratch: ScratchDirectory
    var database: String { scratch.file("troupe.db") }

    init() throws { scratch = try ScratchDirectory("troupe-cli-") }

    /// The incarnation `troupe tree` shows for `agent`.
    func incarnation(_ run: String, _ agent: String) async throws -> Int {
        let nodes = try await json("tree", run) as? [[String: Any]] ?? []
        return nodes.first { $0["name"] as? String == agent }?["incarnation"] as? Int ?? -1
    }

    @Test func anEmbeddedRunObeysTheCommandLine() async throws {
        let store = try await SQLiteStore(path: database)
        let run = try Run(
            Blueprint("embedded", durability: .durable) {
                Child("a", Tally())
                Child("b", Tally())
            },
            id: "run-embedded",
            configuration: Run.Configuration(store: store)
        )
        let probe = AgentProbe(run)
        // As the README shows: the run (and its store) under the process's own ServiceGroup.
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        // A run that an operator cancels (or that completes) ends the group gracefully; the store closes last.
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [
                    .init(service: store),
                    .init(service: run, successTerminationBehavior: .gracefullyShutdownGroup),
                ],
                logger: logger
            )
        )
        let running = Task { try await group.run() }
        try await probe.wait(for: "b", .started)
        try await run.send(Tally.Message.add(5), to: "a")

        // The tree shows the live incarnations, not #0.
        try await eventually("the tree shows both agents running") {
            let a = try await incarnation("run-embedded", "a")
            let b = try await incarnation("run-embedded", "b")
            return a == 1 && b == 1
        }

        let restart = try await troupe("restart", "run-embedded", "a")
        #expect(restart.status == 0, "\(restart.stderr)")
        #expect(restart.stdout.contains("restarted from its last checkpoint"), "\(restart.stdout)")
        try await probe.wait(for: "a", .started, count: 2)
        #expect(try await run.call("a", timeout: .seconds(60)) { Tally.Message.total($0) } == 5)
        try await eventually("the tree shows a's second incarnation") { try await incarnation("run-embedded", "a") == 2 }

        let pause = try await troupe("pause", "run-embedded")
        #expect(pause.stdout.contains("paused 2 agents"), "\(pause.stdout) \(pause.stderr)")
        let status = try await json("status", "run-embedded") as? [String: Any]
        #expect((status?["run"] as? [String: Any])?["status"] as? String == "paused")
        let unpause = try await troupe("unpause", "run-embedded")
        #expect(unpause.stdout.contains("resumed 2 agents"), "\(unpause.stdout) \(unpause.stderr)")
        try await probe.wait(for: "b", .started, count: 2)

        // Every command was applied by the embedded run, each soon after it was queued.
        let commands = (try await json("status", "run-embedded") as? [String: Any])?["commands"] as? [[String: Any]] ?? []
        #expect(commands.count == 3)
        #expect(commands.allSatisfy { ($0["result"] as? [String: Any])?["outcome"] as? String == "applied" }, "\(commands)")

        let cancel = try await troupe("cancel", "run-embedded", "--grace", "2")
        #expect(cancel.status == 0, "\(cancel.stderr)")
        try await running.value
        let ended = try await json("ps") as? [[String: Any]] ?? []
        #expect(ended.first?["status"] as? String == "cancelled", "\(ended)")
    }

    @Test func aRunWhoseLeaseIsTakenStopsItsAgentsAndSaysWhy() async throws {
        let heartbeat = SQLiteStore.Configuration(heartbeat: .milliseconds(100))
        let first = try await SQLiteStore(path: database, configuration: heartbeat)
        let run = try Run(
            Blueprint("leased", durability: .durable) { Child("a", Tally()) },
            id: "run-leased",
            configuration: Run.Configuration(store: first)
        )
        let probe = AgentProbe(run)
        let running = Task { try await run.run() }
        try await probe.wait(for: "a", .started)
        // Another process takes the run over (its owner looks dead to it): here, a second store on the same file
        // after the first one's owner pid was made a finished process's.
        let dead = Process()
        dead.executableURL = URL(fileURLWithPath: "/bin/true")
        try await launch(dead)
        await waitForExit(dead)
        let second = try await SQLiteStore(path: database)
        _ = try await second.write { connection in
            try connection.statement("UPDATE runs SET owner_pid = ? WHERE id = 'run-leased'")
                .run(.integer(Int64(dead.processIdentifier)))
        }
        _ = try await second.attach(RunRecord(id: "run-leased", blueprint: "leased", agents: ["a"]))
        // Within a heartbeat, the first process notices and stops its agents; run() says why.
        do {
            try await running.value
            Issue.record("run() returned normally after losing its lease")
        } catch let error as TroupeError {
            #expect(error.code == .leaseHeld)
            #expect(error.message.contains("lease was lost"), "\(error.message)")
        }
        #expect(probe.events(of: "a").contains { event in
            if case .exited = event.kind { true } else { false }
        }, "\(probe.events(of: "a"))")
        await second.detach("run-leased", outcome: .stopped, error: nil)
        await second.close()
        await first.close()
    }
}
