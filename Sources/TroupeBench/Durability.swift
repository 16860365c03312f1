// The SQLite figures: group-committed checkpoints, a durable pipeline, resume after SIGKILL, bytes per checkpoint.
import Foundation
import Troupe
import TroupeSQLite

/// A fresh database file under the system's temporary directory.
func temporaryDatabase(_ name: String) -> String {
    let directory = NSTemporaryDirectory() + "troupe-bench-" + UUID().uuidString
    try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    return directory + "/" + name + ".db"
}

func removeDatabase(_ path: String) {
    try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent)
}

/// A 200-byte state, encoded.
struct Snapshot: Codable, Sendable {
    var step = 0
    var payload = String(repeating: "p", count: 177)
}

/// Commits `count` checkpoints of a 200-byte state as fast as the store takes them.
struct CheckpointWriter: Agent {
    typealias State = Snapshot
    let count: Int
    let done: Countdown

    func initialState() -> Snapshot { Snapshot() }

    func run(state: inout Snapshot, context: AgentContext<Self>) async throws {
        for _ in 0..<count {
            state.step += 1
            try await context.checkpoint(state)
        }
        done.tick()
    }
}

/// Runs `blueprint` on `store` until `done` reaches zero; returns the seconds that took, then shuts the run down.
func secondsUntil(_ done: Countdown, running blueprint: Blueprint, on store: any CheckpointStore) async throws -> Double {
    let run = try Run(blueprint, configuration: .init(store: store, logger: quiet))
    let start = ContinuousClock.now
    let task = Task { try await run.run() }
    await done.wait()
    let elapsed = seconds(start.duration(to: .now))
    run.shutdown()
    try await task.value
    return elapsed
}

func checkpointThroughput(agents: Int, perAgent: Int, sync: Bool) async throws {
    let path = temporaryDatabase("checkpoints")
    defer { removeDatabase(path) }
    let store = try await SQLiteStore(path: path, configuration: .init(syncEveryCommit: sync))
    let done = Countdown(agents)
    let blueprint = Blueprint("checkpoints", durability: .checkpointed) {
        for index in 0..<agents {
            Child("writer-\(index)", CheckpointWriter(count: perAgent, done: done), restart: .temporary)
        }
    }
    let elapsed = try await secondsUntil(done, running: blueprint, on: store)
    let mode = sync ? "full" : "normal"
    report("sqlite_checkpoints_\(agents)agents_\(mode)", Double(agents * perAgent) / elapsed, "checkpoints/s")
    if agents > 1, !sync {
        // Bytes on disk per retained checkpoint: the checkpoint table, over the rows it holds.
        let (bytes, rows) = try await store.read { connection -> (Int64, Int64) in
            let rows = try connection.scalar("SELECT count(*) FROM checkpoints") ?? 0
            let bytes = (try? connection.scalar(
                "SELECT sum(pgsize - unused) FROM dbstat WHERE name = 'checkpoints'"
            )) ?? nil
            return (bytes ?? 0, rows)
        }
        if bytes > 0 { report("sqlite_bytes_per_checkpoint_200b", Double(bytes) / Double(rows), "bytes") }
    }
    await store.close()
}

/// A handler-style agent whose every message changes a 200-byte state: checkpointed agents commit per message.
struct CheckpointHandler: HandlerAgent {
    typealias State = Snapshot
    typealias Message = Int
    let done: Countdown

    func initialState() -> Snapshot { Snapshot() }

    func handle(_ message: Int, state: inout Snapshot, context: AgentContext<Self>) async throws {
        state.step += 1
        done.tick()
    }
}

/// Checkpoints/s of 1,000 checkpointed handler agents, each handling `perAgent` messages (one commit per message,
/// no `checkpointed` event per commit, unlike loop-style checkpoints).
func handlerCheckpointThroughput(agents: Int, perAgent: Int) async throws {
    let path = temporaryDatabase("handlers")
    defer { removeDatabase(path) }
    let store = try await SQLiteStore(path: path)
    let done = Countdown(agents * perAgent)
    let blueprint = Blueprint("handlers", durability: .checkpointed) {
        for index in 0..<agents { Child("handler-\(index)", CheckpointHandler(done: done)) }
    }
    let run = try Run(blueprint, configuration: .init(store: store, logger: quiet))
    let task = Task { try await run.run() }
    let addresses = try (0..<agents).map { try run.address(of: "handler-\($0)", as: Int.self) }
    let start = ContinuousClock.now
    for round in 0..<perAgent {
        for address in addresses { try await address.send(round) }
    }
    await done.wait()
    let elapsed = seconds(start.duration(to: .now))
    run.shutdown()
    try await task.value
    await store.close()
    report("sqlite_checkpoints_\(agents)handlers_normal", Double(agents * perAgent) / elapsed, "checkpoints/s")
}

// MARK: Durable pipeline

struct DurableProducer: Agent {
    struct State: Codable, Sendable { var next = 1 }
    let count: Int

    func initialState() -> State { State() }

    func run(state: inout State, context: AgentContext<Self>) async throws {
        let batch = 256
        while state.next <= count {
            for _ in 0..<batch where state.next <= count {
                try await context.send(state.next, to: "consumer")
                state.next += 1
            }
            try await context.checkpoint(state)
        }
    }
}

struct DurableConsumer: HandlerAgent {
    struct State: Codable, Sendable { var sum = 0 }
    typealias Message = Int
    let done: Countdown

    func initialState() -> State { State() }

    func handle(_ message: Int, state: inout State, context: AgentContext<Self>) async throws {
        state.sum += message
        done.tick()
    }
}

func durablePipeline(count: Int) async throws {
    let path = temporaryDatabase("pipeline")
    defer { removeDatabase(path) }
    let store = try await SQLiteStore(path: path)
    let done = Countdown(count)
    let blueprint = Blueprint("pipeline", durability: .durable) {
        Child("producer", DurableProducer(count: count), restart: .transient)
        Child("consumer", DurableConsumer(done: done))
    }
    let elapsed = try await secondsUntil(done, running: blueprint, on: store)
    await store.close()
    report("sqlite_durable_pipeline_2agents", Double(count) / elapsed, "msgs/s")
}

// MARK: Resume after SIGKILL

/// Counts the steps it handles.
struct Stepper: HandlerAgent {
    struct State: Codable, Sendable { var steps = 0 }
    enum Message: Codable, Sendable { case step }
    let first: Countdown
    let all: Countdown

    func initialState() -> State { State() }

    func handle(_ message: Message, state: inout State, context: AgentContext<Self>) async throws {
        state.steps += 1
        first.tick()
        all.tick()
    }
}

func stepperBlueprint(agents: Int, first: Countdown, all: Countdown) -> Blueprint {
    Blueprint("resume", durability: .durable) {
        Pool("stepper", Stepper(first: first, all: all), count: agents)
    }
}

/// The child process of the resume benchmark: each agent commits one step; then one more step per agent is
/// accepted (stored) but not handled; then it says `ready` and waits to be killed.
func resumeChild(path: String, agents: Int) async throws -> Never {
    let store = try await SQLiteStore(path: path)
    let all = Countdown(agents)
    let run = try Run(
        stepperBlueprint(agents: agents, first: Countdown(Int.max), all: all),
        id: "run-resume",
        configuration: .init(store: store, logger: quiet)
    )
    _ = Task { try await run.run() }
    for index in 0..<agents { try await run.send(Stepper.Message.step, to: "stepper-\(index)") }
    await all.wait()
    let payload = Array(try JSONEncoder().encode(Stepper.Message.step))
    _ = try await store.commit(
        Commit(run: "run-resume", agent: nil, epoch: 0, sent: (0..<agents).map { SentMessage(to: "stepper-\($0)", payload: payload) })
    )
    FileHandle.standardOutput.write(Data("ready\n".utf8))
    while true { try await Task.sleep(for: .seconds(60)) }
}

func resumeAfterKill(agents: Int, label: String) async throws {
    let path = temporaryDatabase("resume")
    defer { removeDatabase(path) }
    let child = Process()
    child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
    child.arguments = ["--resume-child", path, String(agents)]
    let output = Pipe()
    child.standardOutput = output
    try child.run()
    var seen = Data()
    while !String(decoding: seen, as: UTF8.self).contains("ready") {
        let chunk = output.fileHandleForReading.availableData
        guard !chunk.isEmpty else { throw CocoaError(.fileReadUnknown) }
        seen.append(chunk)
    }
    kill(child.processIdentifier, SIGKILL)
    child.waitUntilExit()

    let start = ContinuousClock.now
    let first = Countdown(1)
    let all = Countdown(agents)
    let store = try await SQLiteStore(path: path)
    let run = try Run(
        stepperBlueprint(agents: agents, first: first, all: all),
        id: "run-resume",
        configuration: .init(store: store, logger: quiet)
    )
    let task = Task { try await run.run() }
    await first.wait()
    let toFirst = start.duration(to: .now)
    await all.wait()
    let toAll = start.duration(to: .now)
    run.shutdown()
    try await task.value
    // Every agent must have exactly two steps: one before the kill, one after.
    let wrong = try await store.read { connection -> Int in
        let statement = try connection.statement(
            """
            SELECT c.state FROM agents a JOIN checkpoint_heads h ON h.agent_id = a.id JOIN checkpoints c ON c.id = h.last_id
            WHERE a.run_id = 'run-resume'
            """
        )
        defer { statement.reset() }
        var wrong = 0
        var count = 0
        while try statement.step() {
            count += 1
            let state = try JSONDecoder().decode(Stepper.State.self, from: Data(statement.blob(0)))
            if state.steps != 2 { wrong += 1 }
        }
        return wrong + (agents - count)
    }
    await store.close()
    report("sqlite_resume_to_first_step_\(label)", seconds(toFirst) * 1000, "ms")
    report("sqlite_resume_to_all_steps_\(label)", seconds(toAll) * 1000, "ms")
    report("sqlite_resume_steps_lost_or_redone_\(label)", Double(wrong), "steps")
}

/// Counts its start in `setUp`: durable agents that only start, to time their claims.
struct ClaimedAgent: HandlerAgent {
    typealias Message = Int
    let started: Countdown
    func setUp(context: AgentContext<Self>) async throws { started.tick() }
    func handle(_ message: Int, state: inout Stateless, context: AgentContext<Self>) async throws {}
}

/// Time from a run's start until all of `agents` durable agents have claimed their rows and started.
func claimThroughput(agents: Int) async throws {
    let path = temporaryDatabase("claims")
    defer { removeDatabase(path) }
    let store = try await SQLiteStore(path: path)
    let started = Countdown(agents)
    let blueprint = Blueprint("claims", durability: .durable) {
        for index in 0..<agents { Child("agent-\(index)", ClaimedAgent(started: started)) }
    }
    let elapsed = try await secondsUntil(started, running: blueprint, on: store)
    report("sqlite_claim_\(agents)agents", elapsed * 1000, "ms")
    await store.close()
}

/// Time for the store alone to claim `agents` fresh durable agents of one run, in the supervisor's batches of 4,096:
/// the store's part of ``claimThroughput(agents:)``.
func storeClaimThroughput(agents: Int) async throws {
    let path = temporaryDatabase("store-claims")
    defer { removeDatabase(path) }
    let store = try await SQLiteStore(path: path)
    let run = RunID("run-claims")
    _ = try await store.attach(RunRecord(id: run, blueprint: "claims"))
    let requests = (0..<agents).map {
        ClaimRequest(agent: AgentID(run: run, name: "agent-\($0)"), type: "ClaimedAgent", durability: .durable, incarnation: 1)
    }
    let start = ContinuousClock.now
    var claimed = 0
    for batch in stride(from: 0, to: agents, by: 4096) {
        claimed += try await store.claim(Array(requests[batch..<min(batch + 4096, agents)])).count
    }
    let elapsed = seconds(start.duration(to: .now))
    precondition(claimed == agents)
    report("sqlite_claim_\(agents)agents_store", elapsed * 1000, "ms")
    await store.close()
}

