import ArgumentParser
import FoundationEssentials
import Glibc
import Logging
import Synchronization
import Troupe
import TroupeHTTP
import TroupeSQLite
import UnixSignals

/// Drives one run in the foreground for `troupe run` and `troupe resume`: starts it, shows its progress, applies
/// operators' commands from the database, keeps its tree snapshot fresh, and stops it on Ctrl-C (a second Ctrl-C
/// cancels).
struct RunDriver {
    let run: Run
    let store: SQLiteStore
    let json: Bool

    /// How the run ended, for the exit code.
    enum Ending {
        case stopped, cancelled, interrupted, terminated, completed
    }

    func drive() async throws -> Ending {
        let display = Display(json: json, interactive: isatty(1) == 1 && !json)
        let run = self.run
        let store = self.store
        // Commands can be applied once the tree is up (a resumed run may have some queued).
        let treeStarted = Latch<Void>()
        let root = run.blueprint.name
        run.addEventSink { event in
            if event.name == root, event.incarnation == 0, case .started = event.kind { treeStarted.open(with: ()) }
            display.event(event)
        }
        let flags = Flags()
        let outcome: Result<Void, any Error> = await withTaskGroup(of: Result<Void, any Error>?.self) { group in
            let runTask = Task { try await run.run() }
            group.addTask {
                await runTask.result.map { _ in () }
            }
            group.addTask {
                // Ctrl-C or SIGTERM: stop gracefully (final checkpoints); again: cancel.
                for await signal in await UnixSignalsSequence(trapping: .sigint, .sigterm) {
                    if flags.interrupts.add(1, ordering: .relaxed).newValue == 1 {
                        // A service manager stops with SIGTERM and reads a non-zero status as a failure: a graceful
                        // stop it asked for ends with 0. Ctrl-C (SIGINT) ends with 130, as shells expect.
                        flags.terminated.store(signal == .sigterm, ordering: .relaxed)
                        display.note("stopping gracefully (final checkpoints); press Ctrl-C again to cancel")
                        run.shutdown()
                    } else {
                        display.note("cancelling")
                        runTask.cancel()
                    }
                }
                return nil
            }
            group.addTask {
                guard await treeStarted.wait() != nil else { return nil }
                await Self.applyCommands(run: run, store: store, display: display, runTask: runTask, flags: flags)
                return nil
            }
            group.addTask {
                // A run whose agents have all exited for good (transient or temporary ones that returned) is done.
                guard await treeStarted.wait() != nil else { return nil }
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(100))
                    let leaves = Self.leaves(await run.supervisor.children())
                    if !leaves.isEmpty, leaves.allSatisfy({ $0.status == .exited }) {
                        flags.completed.store(true, ordering: .relaxed)
                        run.complete()
                        return nil
                    }
                }
                return nil
            }
            group.addTask {
                var last = run.messagesHandled
                var lastTime = ContinuousClock.now
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(1))
                    let children = await run.supervisor.children()
                    try? await store.saveTreeSnapshot(of: run.id, json: TreeNode.json(children))
                    let handled = run.messagesHandled
                    let now = ContinuousClock.now
                    display.progress(children: children, rate: Double(handled - last) / max(seconds(lastTime.duration(to: now)), 0.001))
                    last = handled
                    lastTime = now
                }
                return nil
            }
            var outcome: Result<Void, any Error> = .success(())
            if let first = await group.next(), let result = first { outcome = result }
            group.cancelAll()
            return outcome
        }
        let children = await run.supervisor.children()
        try? await store.saveTreeSnapshot(of: run.id, json: TreeNode.json(children))
        RunCommand.sharedHTTPClient.shutdown()
        display.finish()
        if case .failure(let error) = outcome, !(error is CancellationError) { throw error }
        if flags.interrupts.load(ordering: .relaxed) > 0 {
            return flags.terminated.load(ordering: .relaxed) ? .terminated : .interrupted
        }
        if flags.completed.load(ordering: .relaxed) { return .completed }
        return flags.cancelledByOperator.load(ordering: .relaxed) ? .cancelled : .stopped
    }

    /// Polls the command queue (cheaply: only when `PRAGMA data_version` says another process wrote) and applies
    /// what operators asked, each within a fraction of a second.
    static func applyCommands(run: Run, store: SQLiteStore, display: Display, runTask: Task<Void, any Error>, flags: Flags) async {
        var seen: Int64 = -1
        var paused: [String] = []
        while !Task.isCancelled {
            let version = (try? await store.dataVersion()) ?? seen + 1
            if version != seen {
                seen = version
                for command in (try? await store.pendingCommands(of: run.id)) ?? [] {
                    let result = await apply(command, run: run, store: store, paused: &paused, runTask: runTask, flags: flags)
                    display.note("operator: \(command.verb)\(command.agent.map { " " + $0 } ?? ""): \(result)")
                    try? await store.completeCommand(command.id, result: result)
                }
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    static func apply(
        _ command: SQLiteStore.OperatorCommand,
        run: Run,
        store: SQLiteStore,
        paused: inout [String],
        runTask: Task<Void, any Error>,
        flags: Flags
    ) async -> String {
        do {
            switch command.verb {
            case "cancel":
                guard let agent = command.agent else {
                    // Checked where it was typed, and again here: a command written by another tool or an older
                    // troupe must fail with its reason, never crash the process that applies it.
                    let text = command.arguments["grace"] ?? "10"
                    guard let seconds = Double(text) else {
                        throw TroupeError(.invalidSpec, "--grace takes a number of seconds, not '\(text)'")
                    }
                    let grace: Duration
                    do {
                        grace = try DurationInput.seconds(seconds, "--grace")
                    } catch {
                        throw TroupeError(.invalidSpec, error.description)
                    }
                    flags.cancelledByOperator.store(true, ordering: .relaxed)
                    run.cancel()
                    Task {
                        try? await Task.sleep(for: grace)
                        runTask.cancel()
                    }
                    return "cancelling the run (grace \(text)s)"
                }
                try await supervisor(of: agent, in: run).terminateChild(agent)
                return "stopped"
            case "restart":
                guard let agent = command.agent else { return "refused: restart needs an agent" }
                let fresh = command.arguments["fresh"] == "true"
                try await supervisor(of: agent, in: run).restartChild(agent, fresh: fresh)
                return fresh ? "restarted from its initial state" : "restarted from its last checkpoint"
            case "pause":
                guard paused.isEmpty else { return "already paused" }
                let agents = leaves(await run.supervisor.children()).filter { $0.status == .running || $0.status == .restarting }
                for agent in agents.reversed() {
                    try await supervisor(of: agent.name, in: run).terminateChild(agent.name)
                }
                paused = agents.map(\.name)
                try await store.setRunStatus(run.id, "paused")
                return "paused \(agents.count) agents"
            case "unpause":
                guard !paused.isEmpty else { return "not paused" }
                for name in paused { try await supervisor(of: name, in: run).restartChild(name) }
                let count = paused.count
                paused = []
                try await store.setRunStatus(run.id, "running")
                return "resumed \(count) agents"
            case "requeue":
                let ids = command.arguments["ids"].map { $0.split(separator: ",").compactMap { Int64($0) } }
                let agents = try await store.requeueDeadLetters(of: run.id, ids: ids)
                for agent in Set(agents).sorted() { try await supervisor(of: agent, in: run).restartChild(agent) }
                return "requeued \(agents.count) messages"
            default:
                return "refused: unknown command '\(command.verb)'"
            }
        } catch {
            return "failed: \(error)"
        }
    }

    static func supervisor(of agent: String, in run: Run) async throws -> Supervisor {
        guard let supervisor = await run.supervisor.supervisor(of: agent) else {
            throw TroupeError(.unknownChild, "run \(run.id) has no agent '\(agent)'")
        }
        return supervisor
    }

    /// The agents (children without children) of a tree, in start order.
    static func leaves(_ children: [ChildInfo]) -> [ChildInfo] {
        children.flatMap { $0.children.isEmpty ? [$0] : leaves($0.children) }
    }
}

/// What the driver's tasks share.
final class Flags: Sendable {
    /// Ctrl-C (or SIGTERM) presses so far.
    let interrupts = Atomic<Int>(0)
    /// Whether the first of them was SIGTERM.
    let terminated = Atomic<Bool>(false)
    /// Whether an operator's `troupe cancel` ended the run.
    let cancelledByOperator = Atomic<Bool>(false)
    /// Whether every agent exited for good.
    let completed = Atomic<Bool>(false)
}

/// A node of the tree snapshot written to the database.
struct TreeNode: Codable, Sendable {
    var name: String
    var type: String
    var status: String
    var incarnation: UInt64
    var restarts: Int
    var mailboxDepth: Int
    var passivated: Bool
    var children: [TreeNode]

    init(_ info: ChildInfo) {
        name = info.name
        type = info.typeName
        status = info.status.rawValue
        incarnation = info.incarnation
        restarts = info.restarts
        mailboxDepth = info.mailboxDepth
        passivated = info.isPassivated
        children = info.children.map(TreeNode.init)
    }

    static func json(_ children: [ChildInfo]) -> String { jsonText(children.map(TreeNode.init)) }
}

/// What a foreground run prints: events as lines (or JSON lines), and on a terminal a status line kept current.
final class Display: Sendable {
    private struct State {
        var statuses: [String: String] = [:]
        var checkpoints = 0
        var lastError: String?
        var statusLine = ""
    }

    private let state = Mutex(State())
    private let json: Bool
    private let interactive: Bool
    private let start = ContinuousClock.now

    init(json: Bool, interactive: Bool) {
        self.json = json
        self.interactive = interactive
    }

    func event(_ event: Event) {
        let (kind, detail) = describe(event.kind)
        state.withLock { state in
            switch event.kind {
            case .started: state.statuses[event.name] = "running"
            case .restarting: state.statuses[event.name] = "restarting"
            case .exited(.failed(let error)):
                state.statuses[event.name] = "failed"
                state.lastError = "\(event.name): \(error)"
            case .quarantined(let error):
                state.statuses[event.name] = "quarantined"
                state.lastError = "\(event.name): \(error)"
            case .exited, .stopped, .abandoned: state.statuses[event.name] = "stopped"
            case .checkpointed: state.checkpoints += 1
            default: break
            }
            if case .checkpointed = event.kind { return }
            if json {
                print(jsonText(EventLine(run: event.run.rawValue, agent: event.name, incarnation: event.incarnation, event: kind, detail: detail, time: timestamp(Int64(event.time.timeIntervalSince1970 * 1000)))))
            } else {
                let line = "\(timestamp(Int64(event.time.timeIntervalSince1970 * 1000)))  \("\(event.name)#\(event.incarnation)".padded(to: 16)) \(kind.padded(to: 12))\(detail)"
                write(line.trimmingTrailingSpaces(), statusLine: state.statusLine)
            }
            flushOutput()
        }
    }

    func note(_ text: String) {
        state.withLock { state in
            if json {
                print(jsonText(["type": "note", "text": text]))
            } else {
                write("troupe: \(text)", statusLine: state.statusLine)
            }
            flushOutput()
        }
    }

    func progress(children: [ChildInfo], rate: Double) {
        guard interactive else { return }
        state.withLock { state in
            let leaves = RunDriver.leaves(children)
            let running = leaves.filter { $0.status == .running }.count
            let restarting = leaves.filter { $0.status == .restarting }.count
            let failed = state.statuses.values.filter { $0 == "failed" || $0 == "quarantined" }.count
            var line = "[\(running) running · \(restarting) restarting · \(failed) failed · \(Int(rate)) msgs/s · "
                + "\(state.checkpoints) checkpoints]"
            if let error = state.lastError { line += " last error: \(error.prefix(80))" }
            state.statusLine = line
            Swift.print("\r\u{1B}[K" + line, terminator: "")
            flushOutput()
        }
    }

    func finish() {
        state.withLock { state in
            if interactive, !state.statusLine.isEmpty { Swift.print("") }
            state.statusLine = ""
        }
        flushOutput()
    }

    private func write(_ line: String, statusLine: String) {
        if interactive, !statusLine.isEmpty {
            Swift.print("\r\u{1B}[K" + line)
            Swift.print(statusLine, terminator: "")
        } else {
            Swift.print(line)
        }
    }

    struct EventLine: Encodable {
        var type = "event"
        var run: String
        var agent: String
        var incarnation: UInt64
        var event: String
        var detail: String
        var time: String
    }
}
