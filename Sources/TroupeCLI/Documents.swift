import ArgumentParser
package import Foundation
package import Troupe

/// The documents that `--json` prints and the console's `/api` serves: one builder each, so that the two never
/// disagree.
package enum Documents {
    /// `troupe status RUN --json`: the run, its agents, the commands sent to it, and how many dead letters it has.
    package struct RunReport: Encodable, Sendable {
        package var run: RunSummary
        package var agents: [AgentSummary]
        package var commands: [OperatorCommand]
        package var deadLetters: Int
    }

    /// `troupe tree RUN --json`: one agent of the supervision tree, its children nested.
    package struct TreeNodeReport: Encodable, Sendable {
        package var name: String
        package var type: String
        package var status: String
        package var incarnation: UInt64
        package var epoch: UInt64?
        package var restarts: Int
        package var mailboxDepth: Int
        /// Whether it is passivated: idle, with no task until a message comes.
        package var passivated: Bool
        /// What it waits for (a signal, a durable timer) and since when, as the last snapshot saw it.
        package var waiting: Waiting?
        package var storedMessages: Int?
        package var lastCheckpoint: UInt64?
        package var lastCheckpointAt: String?
        package var lastError: String?
        package var children: [TreeNodeReport]
    }

    /// `troupe describe RUN AGENT --json`.
    package struct AgentReport: Encodable, Sendable {
        package var run: String
        package var blueprint: String
        package var runStatus: String
        package var agent: String
        package var type: String
        package var durability: String
        package var status: String
        package var since: Date?
        package var incarnation: UInt64?
        package var epoch: UInt64
        package var restarts: Int
        package var lastError: String?
        package var lastErrorAt: Date?
        package var mailbox: Int?
        package var mailboxAt: Date?
        /// What it waits for (a signal, a durable timer) and since when, as the run's latest snapshot saw it.
        package var waiting: Waiting?
        package var storedMessages: Int
        package var checkpoint: UInt64?
        package var checkpointAt: Date?
        /// The last checkpoint's state as text (JSON pretty-printed), when it is UTF-8.
        package var state: String?
        package var stateBytes: Int?
        package var history: [EventRecord]
        package var earlierEvents: Int
    }

    /// What became of an operator's command (`troupe cancel … --json` and the others that queue one).
    package struct CommandReport: Encodable, Sendable {
        package var command: String
        /// `applied` (the live process answered: see `outcome`) or `queued` (no live process yet, or no answer in time).
        package var status: String
        package var run: String
        package var outcome: String?
        package var result: String?
        /// Whether a live process drove the run when the command was queued (not in the document).
        package var live = false

        enum CodingKeys: String, CodingKey { case command, status, run, outcome, result }
    }

    package static func status(of run: String, in store: any OperatorStore) async throws -> RunReport {
        let id = RunID(try await resolveRun(run, in: store))
        return RunReport(
            run: try await store.run(id),
            agents: try await store.agents(of: id),
            commands: try await store.commands(of: id),
            deadLetters: try await store.deadLetters(of: id).count
        )
    }

    /// The tree of a run whose id is resolved already.
    package static func tree(of id: RunID, in store: any OperatorStore) async throws -> [TreeNodeReport] {
        let summary = try await store.run(id)
        let agents = try await store.agents(of: id)
        let snapshot = try await store.treeSnapshot(of: id)
        let rows = Dictionary(agents.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        func node(_ tree: TreeNode) -> TreeNodeReport {
            let row = rows[tree.name]
            // A live snapshot knows the status best; once the process is gone, the agents' rows do.
            let status = summary.isDriven ? tree.status.rawValue : (row?.status.rawValue ?? tree.status.rawValue)
            return TreeNodeReport(
                name: tree.name, type: tree.type, status: status, incarnation: tree.incarnation, epoch: row?.epoch,
                restarts: max(tree.restarts, row?.restarts ?? 0), mailboxDepth: tree.mailboxDepth,
                passivated: tree.passivated, waiting: tree.waiting, storedMessages: row?.pendingMessages, lastCheckpoint: row?.lastCheckpoint,
                lastCheckpointAt: row?.lastCheckpointAt.map(timestamp), lastError: row?.lastError,
                children: tree.children.map(node)
            )
        }
        let nodes = (snapshot?.nodes ?? []).map(node)
        guard nodes.isEmpty else { return nodes }
        // No snapshot (a run from before snapshots, or one that never started): the agents' rows.
        return agents.map {
            TreeNodeReport(
                name: $0.name, type: $0.type, status: $0.status.rawValue, incarnation: 0, epoch: $0.epoch,
                restarts: $0.restarts, mailboxDepth: 0, passivated: false, waiting: nil, storedMessages: $0.pendingMessages,
                lastCheckpoint: $0.lastCheckpoint, lastCheckpointAt: $0.lastCheckpointAt.map(timestamp),
                lastError: $0.lastError, children: []
            )
        }
    }

    /// Everything about one agent; an agent the run does not have is ``MissingInput`` (exit 66), naming those it has.
    package static func describe(
        _ agent: String,
        of run: String,
        history: Int,
        in store: any OperatorStore
    ) async throws -> AgentReport {
        let run = RunID(try await resolveRun(run, in: store))
        let summary = try await store.run(run)
        let agents = try await store.agents(of: run)
        guard let row = agents.first(where: { $0.name == agent }) else {
            throw MissingInput(
                description: "run \(run) has no agent '\(agent)'. Its agents: "
                    + "\(agents.isEmpty ? "none yet" : agents.map(\.name).sorted().joined(separator: ", "))."
            )
        }
        // Its events, checkpoints (in its checkpoint history) and log lines (`troupe logs`) aside.
        var events: [EventRecord] = []
        var after: Int64 = 0
        while true {
            let page = try await store.events(of: run, since: after, agent: agent, limit: 5000)
            events += page.filter { $0.event != "checkpointed" && $0.event != "log" }
            guard page.count == 5000, let last = page.last else { break }
            after = last.sequence
        }
        let node = try await store.treeSnapshot(of: run).flatMap { snapshot in
            find(agent, in: snapshot.nodes).map { ($0, snapshot.at) }
        }
        let checkpoint = try await store.checkpoints(of: AgentID(run: run, name: agent)).last
        let failure = events.last { ["crashed", "escalated", "quarantined", "killed", "abandoned"].contains($0.event) }
        let shown = history == 0 ? [] : Array(events.suffix(history))
        return AgentReport(
            run: run.rawValue, blueprint: summary.blueprint, runStatus: summary.status.rawValue, agent: agent,
            type: row.type, durability: row.durability.description, status: row.status.rawValue,
            since: events.last?.time, incarnation: node?.0.incarnation ?? events.last?.incarnation, epoch: row.epoch,
            restarts: row.restarts, lastError: row.lastError, lastErrorAt: row.lastError == nil ? nil : failure?.time,
            mailbox: node?.0.mailboxDepth, mailboxAt: node?.1, waiting: node?.0.waiting, storedMessages: row.pendingMessages,
            checkpoint: checkpoint?.sequence, checkpointAt: row.lastCheckpointAt,
            state: checkpoint.flatMap { stateText($0.state) }, stateBytes: checkpoint?.state.count,
            history: shown, earlierEvents: events.count - shown.count
        )
    }

    /// Queues an operator's command for a run (checking that the agent it names exists and that a cancel has
    /// something to stop), then waits up to `wait` for a live run to apply it.
    package static func command(
        _ action: OperatorCommand.Action,
        for run: String,
        in store: any OperatorStore,
        origin: OperatorCommand.Origin,
        wait: Duration = .seconds(30)
    ) async throws -> CommandReport {
        let run = try await resolveRun(run, in: store)
        let id = RunID(run)
        let summary = try await store.run(id)
        if let agent = action.agent {
            let known = try await store.agents(of: id).contains { $0.name == agent }
            let inTree = try await store.treeSnapshot(of: id)?.contains(agent) ?? false
            guard known || inTree else {
                throw TroupeError(.unknownChild, "run \(run) has no agent '\(agent)'. `troupe tree \(run)` shows its agents.")
            }
        }
        if case .cancel = action, summary.status.hasEnded {
            // Nothing to cancel, and nothing to queue: a resume would start the run only to stop it.
            throw TroupeError(
                .notRunning,
                "run \(run) already ended (\(summary.status.rawValue)); there is nothing to cancel. `troupe rm \(run)` "
                    + "deletes it."
            )
        }
        let command = try await store.enqueue(action, for: id, origin: origin)
        var report = CommandReport(command: String(command), status: "queued", run: run, live: summary.isDriven)
        guard summary.isDriven else { return report }
        // The live process reads the queue within a fraction of a second, but applying a command (a graceful stop)
        // can take longer on a busy machine.
        let deadline = ContinuousClock.now + wait
        while ContinuousClock.now < deadline {
            if let result = try await store.commands(of: id).first(where: { $0.id == command })?.result {
                report.status = "applied"
                report.outcome = result.outcome.rawValue
                report.result = result.message
                return report
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return report
    }

    /// Who is asking, as commands record it: `USER@HOST`, with `how` (such as `console`) before it.
    package static func origin(_ how: String? = nil, reason: String?) -> OperatorCommand.Origin {
        let user = ProcessInfo.processInfo.environment["USER"] ?? getpwuid(getuid()).map { String(cString: $0.pointee.pw_name) }
            ?? "uid \(getuid())"
        let who = "\(user)@\(OwnerLiveness.localHost)"
        let trimmed = reason?.trimmingCharacters(in: .whitespacesAndNewlines)
        return OperatorCommand.Origin(by: how.map { "\($0) of \(who)" } ?? who, reason: trimmed?.isEmpty == false ? trimmed : nil)
    }

    static func find(_ name: String, in nodes: [TreeNode]) -> TreeNode? {
        for node in nodes {
            if node.name == name { return node }
            if let found = find(name, in: node.children) { return found }
        }
        return nil
    }

    /// A state as people read it: JSON pretty-printed with sorted keys, other UTF-8 text as it is, else nothing.
    package static func stateText(_ state: [UInt8]) -> String? {
        if let value = try? JSONSerialization.jsonObject(with: Data(state), options: [.fragmentsAllowed]), let pretty = prettyJSON(value) {
            return pretty
        }
        return String(validating: state, as: UTF8.self)
    }
}

extension Documents {
    /// `troupe resume RUN --detach`: resumes `run` in a background process of this binary and returns once that
    /// process drives it, with its pid and log file.
    package static func resumeDetached(_ run: String, global: GlobalOptions) async throws -> (pid: Int32, log: String) {
        let run = try await global.resolvedRun(run)
        return try await RunCommand.detach(RunID(run), arguments: ["resume", run], global: global)
    }
}
