import FoundationEssentials
import Logging
import Synchronization

/// Steers a run for its operators: applies the commands queued in its store, keeps the store's tree snapshot
/// current, and stops the run when its lease is lost.
///
/// Every ``Run`` has one, whatever process it is embedded in: a run under a user's own `ServiceGroup` obeys
/// `troupe cancel`, `restart` and `pause` exactly like one started by `troupe run`. Commands are read only when
/// the store is a ``ControlQueue``.
///
/// Its state (which agents a pause stopped) changes only in its command loop, one command at a time.
final class RunController: Sendable {
    private let run: Run
    private let environment: RunEnvironment
    private let queue: (any ControlQueue)?
    /// Set when another process took the run over.
    let lostLease = Mutex<TroupeError?>(nil)

    init(run: Run, environment: RunEnvironment) {
        self.run = run
        self.environment = environment
        self.queue = environment.store as? any ControlQueue
    }

    /// Runs beside the tree until cancelled: the lease watch, and with a control queue the command loop and the
    /// tree publisher. `started` is fulfilled once the tree's first start is over.
    func run(started: OneShot<Bool>) async {
        environment.metrics?.lease(run.id, held: true)
        defer { environment.metrics?.lease(run.id, held: false) }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.watchLease() }
            if let queue {
                group.addTask {
                    guard await started.wait() != nil else { return }
                    await self.applyCommands(queue)
                }
                group.addTask {
                    guard await started.wait() != nil else { return }
                    await self.publishTree(queue)
                }
            }
            await group.waitForAll()
        }
    }

    /// Publishes the tree as the run ended (statuses `stopped`, `exited`).
    func publishFinalTree() async {
        guard let queue else { return }
        let nodes = await run.supervisor.children().map(TreeNode.init)
        try? await queue.publishTree(nodes, of: run.id)
    }

    // MARK: Lease

    private func watchLease() async {
        guard let loss = await environment.store.leaseLoss(of: run.id) else { return }
        lostLease.withLock { $0 = loss }
        environment.metrics?.leaseLost()
        environment.metrics?.lease(run.id, held: false)
        environment.logger.error(
            "lease lost; stopping every agent",
            metadata: ["troupe.reason": .string(loss.message)]
        )
        // Nothing the agents do from here on would be fenced: skip graceful stops, cancel at once.
        environment.hurry.fulfill(())
        run.supervisor.requestShutdown()
    }

    // MARK: Tree snapshot

    /// Publishes the tree whenever a lifecycle event moved it (looked at every 100 ms), and every few seconds if
    /// only mailbox depths changed. An idle tree is never rewritten. Reading a large tree has a cost, so a tree in
    /// constant motion is read at most once per ten times that cost: the publisher takes a tenth of a core at most.
    private func publishTree(_ queue: any ControlQueue) async {
        let clock = ContinuousClock()
        var seen: UInt64 = .max
        var published: [TreeNode]?
        var lastLook = clock.now
        var pause = Duration.milliseconds(100)
        while !Task.isCancelled {
            let changes = environment.events.treeChanges.load(ordering: .relaxed)
            let stale = clock.now - lastLook >= .seconds(5)
            if changes != seen || stale {
                seen = changes
                let began = clock.now
                lastLook = began
                let nodes = await run.supervisor.children().map(TreeNode.init)
                environment.metrics?.mailboxes(nodes)
                if nodes != published {
                    do {
                        try await queue.publishTree(nodes, of: run.id)
                        published = nodes
                    } catch {
                        environment.logger.warning("could not publish the tree: \(error)")
                    }
                }
                pause = max(.milliseconds(100), (clock.now - began) * 10)
            }
            try? await Task.sleep(for: pause)
        }
    }

    // MARK: Commands

    private func applyCommands(_ queue: any ControlQueue) async {
        var paused: [String] = []
        // A run paused when its last process died comes back paused: its agents are stopped again before any
        // command is read.
        if let model = environment.store as? any RunReadModel, (try? await model.run(run.id).status) == .paused {
            let result = await apply(.pause, id: 0, paused: &paused)
            environment.logger.notice("resumed paused: \(result)")
        }
        while !Task.isCancelled {
            do {
                for try await command in queue.pendingCommands(of: run.id) {
                    let result = await apply(command.action, id: command.id, paused: &paused)
                    environment.logger.notice(
                        "operator: \(command.action.verb)\(command.action.agent.map { " " + $0 } ?? ""): \(result)"
                    )
                    try await queue.complete(command.id, with: result)
                    var done = command
                    done.result = result
                    environment.events.emit(run.supervisor.name, incarnation: 0, .commandApplied(done))
                    run.commandApplied(done)
                }
                return
            } catch is CancellationError {
                return
            } catch {
                environment.logger.warning("reading operators' commands failed: \(error); retrying")
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    private func apply(_ action: OperatorCommand.Action, id: Int64, paused: inout [String]) async -> OperatorCommand.Result {
        do {
            switch action {
            case .cancel(let grace):
                run.cancel(grace: grace)
                return .init(.applied, "cancelling the run (grace \(Event.Kind.seconds(grace)))")
            case .stop(let agent):
                try await supervisor(of: agent).terminateChild(agent)
                paused.removeAll { $0 == agent }
                return .init(.applied, "stopped")
            case .restart(let agent, let fresh):
                try await supervisor(of: agent).restartChild(agent, fresh: fresh)
                paused.removeAll { $0 == agent }
                return .init(.applied, fresh ? "restarted from its initial state" : "restarted from its last checkpoint")
            case .pause:
                guard paused.isEmpty else { return .init(.refused, "already paused") }
                let agents = ChildInfo.agents(of: await run.supervisor.children())
                    .filter { $0.status == .running || $0.status == .restarting }
                for agent in agents.reversed() { try await supervisor(of: agent.name).terminateChild(agent.name) }
                paused = agents.map(\.name)
                try await queue?.setPaused(true, run: run.id)
                return .init(.applied, "paused \(agents.count) agents")
            case .unpause:
                guard !paused.isEmpty else { return .init(.refused, "not paused") }
                for name in paused { try await supervisor(of: name).restartChild(name) }
                let count = paused.count
                paused = []
                try await queue?.setPaused(false, run: run.id)
                return .init(.applied, "resumed \(count) agents")
            case .requeue(let ids):
                guard let model = environment.store as? any RunReadModel else {
                    return .init(.refused, "this run's store keeps no dead letters")
                }
                let agents = try await model.requeueDeadLetters(of: run.id, ids: ids)
                for agent in Set(agents).sorted() { try await supervisor(of: agent).restartChild(agent) }
                return .init(.applied, "requeued \(agents.count) messages")
            case .send(let agent, let message):
                try await environment.registry.accept(json: Array(message.utf8), to: agent)
                return .init(.applied, "delivered")
            case .signal(let agent, let name, let value):
                try await run.supervisor.signal(agent, id: id, name: name, payload: Array(value.utf8))
                return .init(.applied, "delivered")
            case .unrecognized(_, let reason):
                return .init(.refused, reason)
            }
        } catch {
            return .init(.failed, "\(error)")
        }
    }

    private func supervisor(of agent: String) async throws -> Supervisor {
        guard let supervisor = await run.supervisor.supervisor(of: agent) else {
            throw TroupeError(.unknownChild, "run \(run.id) has no agent '\(agent)'")
        }
        return supervisor
    }
}
