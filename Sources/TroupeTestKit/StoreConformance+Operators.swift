import FoundationEssentials
import Logging
import Troupe

// The operator's half of the contract: the read model and the control queue, as every `troupe` verb relies on them.
extension StoreConformance {
    static let operatorChecks: [Check] = [
        Check(name: "a run's summary follows its life, with its blueprint, parameters and durability", body: runLife),
        Check(name: "an unknown run is an unknownRun error everywhere an operator names one", body: unknownRuns),
        Check(name: "agents show their status, restarts and error from events, their checkpoint and inbox", body: agentRows),
        Check(name: "events are numbered, read since a number, filtered by agent, and tailed", body: eventLog),
        Check(name: "agents' log lines are bounded: the newest stay", body: logRetention),
        Check(name: "dead letters are listed, requeued into their agent's next claim, and purged", body: deadLetterAdmin),
        Check(name: "a fork starts from the chosen checkpoint, stopped, and leaves the original", body: forks),
        Check(name: "a fork is the cut after the chosen commit, with the messages in flight then", body: forksCarryMessagesInFlight),
        Check(name: "prune keeps the newest checkpoints and drops old events", body: pruning),
        Check(name: "runs are deleted whole; a driven run is refused and nothing is deleted", body: deletion),
        Check(name: "commands are read once, in order, as they come, and their results recorded", body: commandQueue),
        Check(name: "the published tree and a pause are what operators read", body: treeAndPause),
    ]

    /// Polls `condition` every 10 ms until it holds, for up to 45 s (event logs may be written asynchronously; a
    /// loaded machine took more than 10 s to write the log-retention check's lines to PostgreSQL).
    static func eventually(_ what: String, _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(45)
        while ContinuousClock.now < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw Failure(description: "timed out waiting until \(what)")
    }

    static func event(_ name: String, _ incarnation: UInt64, _ kind: Event.Kind) -> Event {
        Event(run: run, name: name, incarnation: incarnation, kind: kind)
    }

    static func runLife(_ backend: Backend) async throws {
        let handle = try await backend.fresh()()
        let store = handle.store
        let record = RunRecord(
            id: run, blueprint: "conformance", agents: ["a", "b"], parameters: ["size": "3"], durability: .durable
        )
        try expect(try await store.attach(record) == false, "a new run was reported as a resume")
        var summary = try await store.run(run)
        try expect(summary.status == .running && summary.isDriven, "a driven run shows \(summary.status), driven \(summary.isDriven)")
        let pid = Int64(ProcessInfo.processInfo.processIdentifier)
        try expect(summary.owner?.pid == pid, "the run's owner is pid \(String(describing: summary.owner?.pid)), not this process's \(pid)")
        try expect(summary.blueprint == "conformance" && summary.parameters == ["size": "3"], "recorded \(summary)")
        try expect(summary.durability == .durable, "durability recorded as \(String(describing: summary.durability))")
        let firstLease = try expectValue(summary.lease, "a driven run shows no lease epoch")
        let listed = try await store.runs().map(\.id)
        try expect(listed == [run], "runs() lists \(listed)")
        await store.detach(run, outcome: .completed, error: nil)
        summary = try await store.run(run)
        try expect(summary.status == .completed && !summary.isDriven, "an ended run shows \(summary.status), driven \(summary.isDriven)")
        try expect(summary.endedAt != nil, "an ended run has no end time")
        try expect(try await store.attach(RunRecord(id: run, blueprint: "conformance", agents: ["a", "b"])) == true, "a resume was reported as new")
        summary = try await store.run(run)
        try expect(summary.status == .running && summary.durability == .durable, "resumed: \(summary.status), durability kept: \(String(describing: summary.durability))")
        try expect((summary.lease ?? 0) > firstLease, "a resume kept lease epoch \(String(describing: summary.lease)) (was \(firstLease))")
        await store.detach(run, outcome: .failed, error: "boom")
        summary = try await store.run(run)
        try expect(summary.status == .failed && summary.error == "boom", "a failed run shows \(summary.status), \(String(describing: summary.error))")
        await handle.close()
    }

    static func unknownRuns(_ backend: Backend) async throws {
        let handle = try await backend.fresh()()
        let store = handle.store
        let missing: RunID = "run-missing"
        func unknown(_ body: () async throws -> Void) async -> Bool {
            do {
                try await body()
                return false
            } catch let error as TroupeError {
                return error.code == .unknownRun
            } catch {
                return false
            }
        }
        try expect(await unknown { _ = try await store.run(missing) }, "run(_:) of an unknown run")
        try expect(await unknown { _ = try await store.enqueue(.pause, for: missing) }, "enqueue for an unknown run")
        try expect(await unknown { try await store.deleteRuns([missing]) }, "deleteRuns of an unknown run")
        try expect(
            await unknown { try await store.fork(AgentID(run: missing, name: "a"), sequence: 1, as: "run-fork") },
            "fork of an unknown run"
        )
        await handle.close()
    }

    static func agentRows(_ backend: Backend) async throws {
        try await attached(backend) { handle, _ in
            let store = handle.store
            let claim = try await claim(store)
            _ = try await store.commit(Commit(run: run, agent: agent, epoch: claim.epoch, checkpoint: checkpoint(agent, epoch: claim.epoch, sequence: 1, "one")))
            _ = try await send(store, to: "a", "waiting")
            store.record(event("a", 1, .started))
            store.record(event("a", 1, .exited(.failed(TroupeError(.invalidSpec, "bad input")))))
            store.record(event("a", 1, .restarting(after: .milliseconds(10), restarts: 1)))
            try await eventually("the agent's row shows the restart") {
                try await store.agents(of: run).first?.status == .restarting
            }
            let rows = try await store.agents(of: run)
            try expect(rows.map(\.name) == ["a"], "agents \(rows.map(\.name))")
            let row = rows[0]
            try expect(row.restarts == 1, "restarts \(row.restarts)")
            try expect(row.lastError?.contains("bad input") == true, "last error \(String(describing: row.lastError))")
            try expect(row.lastCheckpoint == 1 && row.lastCheckpointAt != nil, "last checkpoint \(String(describing: row.lastCheckpoint))")
            try expect(row.pendingMessages == 1, "pending messages \(row.pendingMessages)")
            try expect(row.epoch == claim.epoch && row.durability == .durable && row.type == "Conformance", "row \(row)")
            let history = try await store.checkpointHistory(of: agent)
            try expect(history.map(\.sequence) == [1] && history[0].bytes == 3, "history \(history)")
        }
    }

    static func eventLog(_ backend: Backend) async throws {
        try await attached(backend) { handle, _ in
            let store = handle.store
            _ = try await claim(store)
            _ = try await claim(store, other)
            for (name, kind) in [("a", Event.Kind.started), ("b", .started), ("a", .checkpointed(sequence: 1)), ("b", .stopped)] {
                store.record(event(name, 1, kind))
            }
            try await eventually("four events are logged") {
                try await store.events(of: run, since: 0, agent: nil, limit: 100).count == 4
            }
            let all = try await store.events(of: run, since: 0, agent: nil, limit: 100)
            try expect(all.map(\.event) == ["started", "started", "checkpointed", "stopped"], "events \(all.map(\.event))")
            try expect(all.map(\.sequence) == all.map(\.sequence).sorted() && Set(all.map(\.sequence)).count == 4, "sequences \(all.map(\.sequence))")
            try expect(all[2].detail == "#1" && all[0].run == run && all[0].incarnation == 1, "recorded \(all[2])")
            let later = try await store.events(of: run, since: all[1].sequence, agent: nil, limit: 100)
            try expect(later.map(\.sequence) == Array(all.map(\.sequence).suffix(2)), "since: \(later.map(\.sequence))")
            let ofB = try await store.events(of: run, since: 0, agent: "b", limit: 100)
            try expect(ofB.map(\.event) == ["started", "stopped"], "of b: \(ofB.map(\.event))")
            let limited = try await store.events(of: run, since: 0, agent: nil, limit: 1)
            try expect(limited.map(\.sequence) == [all[0].sequence], "limit 1: \(limited.map(\.sequence))")
            let tail = try await store.lastEvents(of: run, count: 2, agent: nil)
            try expect(tail.map(\.sequence) == Array(all.map(\.sequence).suffix(2)), "last 2: \(tail.map(\.sequence))")
            let tailA = try await store.lastEvents(of: run, count: 1, agent: "a")
            try expect(tailA.map(\.event) == ["checkpointed"], "last of a: \(tailA.map(\.event))")
        }
    }

    static func logRetention(_ backend: Backend) async throws {
        try await attached(backend) { handle, _ in
            let store = handle.store
            _ = try await claim(store)
            store.record(event("a", 1, .started))
            let total = LogRetention.lines + LogRetention.every
            for line in 1...total { store.record(event("a", 1, .logged(level: .info, message: "line \(line)"))) }
            store.record(event("a", 1, .stopped))
            try await eventually("the last event is logged") {
                try await store.lastEvents(of: run, count: 1, agent: nil).first?.event == "stopped"
            }
            var lines: [EventRecord] = []
            var after: Int64 = 0
            while true {
                let page = try await store.events(of: run, since: after, agent: nil, limit: 5000)
                lines += page.filter { $0.event == "log" }
                guard let last = page.last else { break }
                after = last.sequence
            }
            try expect(
                (LogRetention.lines..<total).contains(lines.count),
                "\(lines.count) of \(total) log lines kept; between \(LogRetention.lines) and \(total - 1) should be"
            )
            try expect(lines.last?.detail == "info line \(total)", "the newest line is \(String(describing: lines.last?.detail))")
            try expect(lines.first?.detail == "info line \(total - lines.count + 1)", "the lines kept are not the newest: \(String(describing: lines.first?.detail))")
            // Other events are not pruned with them.
            let others = try await store.events(of: run, since: 0, agent: nil, limit: 2).filter { $0.event != "log" }
            try expect(others.first?.event == "started", "the run's first event went with the old log lines")
        }
    }

    static func deadLetterAdmin(_ backend: Backend) async throws {
        let open = try await backend.fresh()
        var handle = try await open()
        _ = try await handle.store.attach(record)
        var claim = try await claim(handle.store)
        let first = try await send(handle.store, to: "a", "poison")
        let second = try await send(handle.store, to: "a", "bad")
        for (id, text) in [(first, "poison"), (second, "bad")] {
            try await handle.store.deadLetter(
                DeadLetter(agent: agent, message: Array(text.utf8), error: "crashed on \(text)", failures: 3, messageID: id)
            )
        }
        let letters = try await handle.store.deadLetters(of: run)
        try expect(letters.map(\.error) == ["crashed on poison", "crashed on bad"], "dead letters \(letters.map(\.error))")
        try expect(letters.map(\.failures) == [3, 3] && letters.map(\.bytes) == [6, 3] && letters.allSatisfy { $0.agent == "a" }, "\(letters)")
        try expect(try await handle.pendingMessages(run).isEmpty, "dead-lettered messages are still in the inbox")
        let requeued = try await handle.store.requeueDeadLetters(of: run, ids: [letters[0].id])
        try expect(requeued == ["a"], "requeued to \(requeued)")
        try expect(try await handle.store.deadLetters(of: run).map(\.id) == [letters[1].id], "the requeued letter is still listed")
        claim = try await self.claim(handle.store, incarnation: 2)
        try expect(claim.pending.map(\.payload) == [Array("poison".utf8)], "the next claim got \(claim.pending.count) messages")
        try expect(try await handle.store.purgeDeadLetters(of: run, ids: [letters[1].id + 1000]) == 0, "purged an unknown id")
        try expect(try await handle.store.purgeDeadLetters(of: run, ids: nil) == 1, "purge all")
        try expect(try await handle.store.deadLetters(of: run).isEmpty, "dead letters left after the purge")
        // Requeued while no process drives the run: the next resume's claim delivers it.
        await handle.store.detach(run, outcome: .stopped, error: nil)
        await handle.close()
        handle = try await open()
        _ = try await handle.store.attach(record)
        let resumed = try await self.claim(handle.store)
        try expect(resumed.pending.map(\.payload) == [Array("poison".utf8)], "after the resume: \(resumed.pending.count) messages")
        await handle.store.detach(run, outcome: .stopped, error: nil)
        await handle.close()
    }

    static func forksCarryMessagesInFlight(_ backend: Backend) async throws {
        try await attached(backend) { handle, _ in
            let store = handle.store
            let a = try await claim(store)
            let b = try await claim(store, other)
            func commit(_ who: AgentID, _ epoch: UInt64, _ sequence: UInt64, consumed: [Int64] = [], send: String? = nil) async throws -> [Int64] {
                try await store.commit(
                    Commit(
                        run: run, agent: who, epoch: epoch,
                        checkpoint: checkpoint(who, epoch: epoch, sequence: sequence, "\(who.name)\(sequence)"),
                        consumed: consumed, sent: send.map { [SentMessage(to: "b", payload: Array($0.utf8))] } ?? []
                    )
                )
            }
            // a sends m1 with its checkpoint 1; b consumes it with its checkpoint 1; a sends m2 with checkpoint 2.
            let m1 = try await commit(agent, a.epoch, 1, send: "m1")[0]
            _ = try await commit(other, b.epoch, 1, consumed: [m1])
            let m2 = try await commit(agent, a.epoch, 2, send: "m2")[0]
            _ = try await commit(other, b.epoch, 2, consumed: [m2])

            func forked(at sequence: UInt64, as fork: RunID) async throws -> (b: String?, inFlight: [String]) {
                try await store.fork(agent, sequence: sequence, as: fork)
                let state = try await handle.checkpoints(AgentID(run: fork, name: "b")).last.map { String(decoding: $0.state, as: UTF8.self) }
                let messages = try await handle.pendingMessages(fork).map { String(decoding: $0.payload, as: UTF8.self) }
                return (state, messages)
            }
            // Right after a's checkpoint 1: m1 sent, not yet consumed; b had not checkpointed.
            let first = try await forked(at: 1, as: "run-fork-1")
            try expect(first.b == nil && first.inFlight == ["m1"], "a fork at a@1 has b=\(first.b ?? "initial") and in flight \(first.inFlight); expected initial and [m1]")
            // Right after a's checkpoint 2: b has consumed m1 (b1), m2 is in flight.
            let second = try await forked(at: 2, as: "run-fork-2")
            try expect(second.b == "b1" && second.inFlight == ["m2"], "a fork at a@2 has b=\(second.b ?? "initial") and in flight \(second.inFlight); expected b1 and [m2]")
            // The fork's agents adopt what was in flight when it is resumed; the original's inbox is untouched.
            try expect(try await handle.pendingMessages(run).isEmpty, "the original's consumed messages came back as pending")
            await store.detach(run, outcome: .stopped, error: nil)
            _ = try await store.attach(RunRecord(id: "run-fork-2", blueprint: "conformance", agents: ["a", "b"]))
            let resumed = try await store.claim(AgentID(run: "run-fork-2", name: "b"), type: "Conformance", durability: .durable, incarnation: 1)
            try expect(resumed.pending.map { String(decoding: $0.payload, as: UTF8.self) } == ["m2"], "the resumed fork's b got \(resumed.pending.count) pending messages, not [m2]")
            try expect(resumed.latest.map { String(decoding: $0.state, as: UTF8.self) } == "b1", "the resumed fork's b did not start from b1")
            await store.detach("run-fork-2", outcome: .stopped, error: nil)
            _ = try await store.attach(record)
        }
    }

    static func forks(_ backend: Backend) async throws {
        try await attached(backend) { handle, _ in
            let store = handle.store
            let a = try await claim(store)
            let b = try await claim(store, other)
            // No pauses: the cut is the order of commits, not their time (these land within a millisecond).
            for sequence in UInt64(1)...3 {
                _ = try await store.commit(Commit(run: run, agent: agent, epoch: a.epoch, checkpoint: checkpoint(agent, epoch: a.epoch, sequence: sequence, "a\(sequence)")))
                _ = try await store.commit(Commit(run: run, agent: other, epoch: b.epoch, checkpoint: checkpoint(other, epoch: b.epoch, sequence: sequence, "b\(sequence)")))
            }
            let fork: RunID = "run-fork"
            try await store.fork(agent, sequence: 2, as: fork)
            let summary = try await store.run(fork)
            try expect(summary.status == .stopped && !summary.isDriven && summary.blueprint == "conformance", "the fork is \(summary)")
            let forkedA = try await handle.checkpoints(AgentID(run: fork, name: "a")).last
            try expect(forkedA.map { String(decoding: $0.state, as: UTF8.self) } == "a2", "a forked from \(String(describing: forkedA))")
            let forkedB = try await handle.checkpoints(AgentID(run: fork, name: "b")).last
            // b's checkpoint 2 was written after a's, checkpoint 1 before it.
            try expect(forkedB.map { String(decoding: $0.state, as: UTF8.self) } == "b1", "b forked from \(String(describing: forkedB))")
            let original = try await handle.checkpoints(agent).last
            try expect(original.map { String(decoding: $0.state, as: UTF8.self) } == "a3", "the original changed")
            do {
                try await store.fork(agent, sequence: 99, as: "run-fork-2")
                throw Failure(description: "a fork from a checkpoint that does not exist was accepted")
            } catch let error as TroupeError {
                try expect(error.code == .unknownChild, "a missing checkpoint gave \(error.code)")
            }
            try await store.deleteRuns([fork])

            // At a's first checkpoint, b had none yet: starting b from scratch is the state of that moment.
            try await store.fork(agent, sequence: 1, as: "run-fork-early")
            let early = try await handle.checkpoints(AgentID(run: "run-fork-early", name: "b"))
            try expect(early.isEmpty, "b was forked from \(early.map(\.sequence)) before it had checkpointed")
            try await store.deleteRuns(["run-fork-early"])
            // Once b's checkpoint from a's second one is pruned, that fork would start b from scratch: refused.
            _ = try await store.prune(keep: 2, eventsBefore: nil, dryRun: false)
            do {
                try await store.fork(agent, sequence: 2, as: "run-fork-pruned")
                throw Failure(description: "a fork missing b's pruned checkpoint was accepted")
            } catch let error as TroupeError {
                try expect(error.code == .unknownChild && error.message.contains("'b'"), "the refusal was \(error)")
            }
            let left = try await store.runs().map(\.id)
            try expect(!left.contains("run-fork-pruned"), "a refused fork left run \(left)")
        }
    }

    static func pruning(_ backend: Backend) async throws {
        try await attached(backend) { handle, _ in
            let store = handle.store
            let claim = try await claim(store)
            for sequence in UInt64(1)...3 {
                _ = try await store.commit(Commit(run: run, agent: agent, epoch: claim.epoch, checkpoint: checkpoint(agent, epoch: claim.epoch, sequence: sequence, "s\(sequence)")))
            }
            store.record(event("a", 1, .started))
            try await eventually("the event is logged") { try await !store.events(of: run, since: 0, agent: nil, limit: 10).isEmpty }
            let dry = try await store.prune(keep: 1, eventsBefore: Date().addingTimeInterval(60), dryRun: true)
            try expect(dry.checkpoints >= 2 && dry.events == 1, "a dry run reports \(dry)")
            try expect(try await handle.checkpoints(agent).count >= 3, "a dry run deleted checkpoints")
            let report = try await store.prune(keep: 1, eventsBefore: Date().addingTimeInterval(60), dryRun: false)
            try expect(report == dry, "prune reported \(report), its dry run \(dry)")
            let kept = try await handle.checkpoints(agent).map(\.sequence)
            try expect(kept == [3], "kept \(kept)")
            try expect(try await store.events(of: run, since: 0, agent: nil, limit: 10).isEmpty, "old events kept")
        }
    }

    static func deletion(_ backend: Backend) async throws {
        let handle = try await backend.fresh()()
        let store = handle.store
        let ended = RunRecord(id: "run-ended", blueprint: "conformance", agents: ["a"])
        _ = try await store.attach(ended)
        let endedAgent = AgentID(run: ended.id, name: "a")
        let claim = try await store.claim(endedAgent, type: "Conformance", durability: .durable, incarnation: 1)
        _ = try await store.commit(Commit(run: ended.id, agent: endedAgent, epoch: claim.epoch, checkpoint: checkpoint(endedAgent, epoch: claim.epoch, sequence: 1, "x")))
        await store.detach(ended.id, outcome: .completed, error: nil)
        _ = try await store.attach(record)
        do {
            try await store.deleteRuns([ended.id, run])
            throw Failure(description: "a driven run was deleted")
        } catch let error as TroupeError {
            try expect(error.code == .leaseHeld, "deleting a driven run gave \(error.code)")
        }
        try expect(try await store.runs().count == 2, "a refused delete removed runs")
        try await store.deleteRuns([ended.id])
        let left = try await store.runs().map(\.id)
        try expect(left == [run], "left \(left)")
        try expect(try await handle.checkpoints(endedAgent).isEmpty, "a deleted run's checkpoints are kept")
        try expect(try await store.agents(of: ended.id).isEmpty, "a deleted run's agents are kept")
        await store.detach(run, outcome: .stopped, error: nil)
        await handle.close()
    }

    static func commandQueue(_ backend: Backend) async throws {
        try await attached(backend) { handle, _ in
            let store = handle.store
            let origin = OperatorCommand.Origin(by: "ops@host-1", reason: "stuck \"again\"")
            let first = try await store.enqueue(.restart(agent: "a", fresh: true), for: run, origin: origin)
            let second = try await store.enqueue(.cancel(grace: .milliseconds(2500)), for: run)
            let unknown = try await store.enqueue(.unrecognized(verb: "frobnicate", reason: "x"), for: run)
            try expect(first < second && second < unknown, "ids \(first), \(second), \(unknown) not increasing")
            let reader = Task { () -> [OperatorCommand] in
                var seen: [OperatorCommand] = []
                for try await command in store.pendingCommands(of: run) {
                    seen.append(command)
                    if seen.count == 4 { break }
                }
                return seen
            }
            try await Task.sleep(for: .milliseconds(20))
            let late = try await store.enqueue(.send(agent: "b", message: #"{"note":{"_0":"quote \" and ünïcode"}}"#), for: run)
            let got = try await withThrowingTaskGroup(of: [OperatorCommand]?.self) { group in
                group.addTask { try await reader.value }
                group.addTask {
                    try await Task.sleep(for: .seconds(10))
                    return nil
                }
                defer {
                    group.cancelAll()
                    reader.cancel()
                }
                return try await group.next() ?? nil
            }
            guard let got else { throw Failure(description: "the pending commands did not all arrive within 10 s") }
            try expect(got.map(\.id) == [first, second, unknown, late], "read \(got.map(\.id))")
            try expect(got[0].action == .restart(agent: "a", fresh: true), "read back as \(got[0].action)")
            try expect(got[0].origin == origin, "its origin read back as \(String(describing: got[0].origin))")
            try expect(got[1].origin == nil, "a command without an origin read back with \(String(describing: got[1].origin))")
            try expect(got[1].action == .cancel(grace: .milliseconds(2500)), "read back as \(got[1].action)")
            try expect(
                got[3].action == .send(agent: "b", message: #"{"note":{"_0":"quote \" and ünïcode"}}"#), "read back as \(got[3].action)"
            )
            if case .unrecognized(let verb, _) = got[2].action {
                try expect(verb == "frobnicate", "verb \(verb)")
            } else {
                throw Failure(description: "an unknown verb was read as \(got[2].action)")
            }
            try expect(got.allSatisfy { $0.run == run && $0.result == nil }, "\(got)")
            for command in got {
                try await store.complete(command.id, with: .init(command.id == unknown ? .refused : .applied, "done \(command.id)"))
            }
            let listed = try await store.commands(of: run)
            try expect(listed.map(\.id) == [first, second, unknown, late], "listed \(listed.map(\.id))")
            try expect(listed.allSatisfy { $0.appliedAt != nil && $0.result?.message == "done \($0.id)" }, "results \(listed.map(\.result))")
            try expect(listed[2].result?.outcome == .refused && listed[0].result?.outcome == .applied, "outcomes \(listed.map(\.result))")
            // A new reader (the next resume) gets nothing already applied.
            let again = Task { () -> OperatorCommand? in
                for try await command in store.pendingCommands(of: run) { return command }
                return nil
            }
            let fresh = try await store.enqueue(.pause, for: run)
            let next = try await withThrowingTaskGroup(of: OperatorCommand??.self) { group in
                group.addTask { try await again.value }
                group.addTask {
                    try await Task.sleep(for: .seconds(10))
                    return .some(nil)
                }
                defer {
                    group.cancelAll()
                    again.cancel()
                }
                return try await group.next() ?? nil
            }
            try expect(next??.id == fresh, "a new reader got \(String(describing: next??.id)) first, expected the new command \(fresh)")
        }
    }

    static func treeAndPause(_ backend: Backend) async throws {
        try await attached(backend) { handle, _ in
            let store = handle.store
            try expect(try await store.treeSnapshot(of: run) == nil, "a tree before any was published")
            let tree = [
                TreeNode(name: "a", type: "Ledger", status: .running, incarnation: 2, restarts: 1, mailboxDepth: 4),
                TreeNode(name: "inner", type: "Supervisor", status: .running, incarnation: 1, children: [
                    TreeNode(name: "b", type: "Ledger", status: .restarting, incarnation: 3, passivated: true)
                ]),
            ]
            try await store.publishTree(tree, of: run)
            let snapshot = try await store.treeSnapshot(of: run)
            try expect(snapshot?.nodes == tree, "the tree read back is \(String(describing: snapshot?.nodes))")
            try expect(snapshot?.contains("b") == true && snapshot?.contains("c") == false, "contains(_:) on the snapshot")
            try await store.setPaused(true, run: run)
            let paused = try await store.run(run).status
            try expect(paused == .paused, "a paused run shows \(paused)")
            try await store.setPaused(false, run: run)
            let unpaused = try await store.run(run).status
            try expect(unpaused == .running, "an unpaused run shows \(unpaused)")
        }
    }
}
