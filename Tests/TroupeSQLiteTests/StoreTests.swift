import Foundation
import Testing
import TroupeTestSupport
import Troupe
import TroupeSQLite
import TroupeTestKit

/// Grows its state by a kilobyte per message, for filling a size-limited database.
struct Hoarder: HandlerAgent {
    struct State: AgentState { var bytes: [String] = [] }
    enum Message: Codable, Sendable { case grow }

    func handle(_ message: Message, state: inout State, context: AgentContext<Self>) async throws {
        state.bytes.append(String(repeating: "x", count: 1024))
    }
}

@Suite(.timeLimit(.minutes(3)))
struct StoreTests {
    let agent = AgentID(run: "run-s", name: "a")

    @Test func aLockedDatabaseWaitsForTheBusyTimeoutThenSaysSo() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file()
        try await withStore(path, .init(busyTimeout: .milliseconds(200))) { store in
            let other = try Connection(path: path)
            try other.execute("BEGIN IMMEDIATE")
            let started = ContinuousClock.now
            await #expect(throws: TroupeError(.busy, "")) {
                _ = try await store.attach(RunRecord(id: "run-l", blueprint: "b"))
            }
            #expect(started.duration(to: .now) >= .milliseconds(150))
            try other.execute("ROLLBACK")
            // Nothing was lost or half-written: the same call now succeeds.
            #expect(try await store.attach(RunRecord(id: "run-l", blueprint: "b")) == false)
        }
    }

    @Test func aResumeBlockedByASilentOwnerHoldingTheLockNamesIt() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file()
        let record = RunRecord(id: "run-frozen", blueprint: "b")
        // The owner: a live process that never renews its lease (as one stopped with SIGSTOP).
        let frozen = Process()
        frozen.executableURL = URL(fileURLWithPath: "/bin/sleep")
        frozen.arguments = ["60"]
        try await launch(frozen)
        defer { frozen.terminate() }
        try await withStore(path) { store in _ = try await store.attach(record) }
        let other = try Connection(path: path)
        try other.statement("UPDATE runs SET owner_pid = ?, heartbeat_at = heartbeat_at - 60000 WHERE id = 'run-frozen'")
            .run(.integer(Int64(frozen.processIdentifier)))
        // It went silent in the middle of a commit: the write lock stays taken.
        try other.execute("BEGIN IMMEDIATE")
        defer { try? other.execute("ROLLBACK") }
        try await withStore(path, .init(busyTimeout: .seconds(5), heartbeat: .milliseconds(100))) { resume in
            let started = ContinuousClock.now
            do {
                _ = try await resume.attach(record)
                Issue.record("a run whose owner holds the lock was attached")
            } catch let error as TroupeError {
                // One busy timeout (5 s), as the operator asked; the run's own commits are more patient: four, which
                // wait 20 s at least. Below that bound, a loaded machine has 15 s of slack (with 2 s and a 7 s bound,
                // a loaded run once took 7.3 s).
                #expect(started.duration(to: .now) < .seconds(20))
                #expect(error.code == .leaseHeld)
                #expect(error.message.contains("process \(frozen.processIdentifier)"), "\(error.message)")
                #expect(error.message.contains("kill -CONT \(frozen.processIdentifier)"), "\(error.message)")
                #expect(error.message.contains("write lock"), "\(error.message)")
            }
        }
    }

    @Test func aFullDiskStopsTheAgentAndKeepsWhatWasCommitted() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file()
        let store = try await SQLiteStore(path: path, configuration: .init(sizeLimit: 256 * 1024))
        let blueprint = Blueprint("full", intensity: .init(maxRestarts: 0, within: .seconds(1)), durability: .durable) {
            Child("hoarder", Hoarder())
        }
        let run = try Run(blueprint, id: "run-f", configuration: .test(store))
        let probe = AgentProbe(run)
        let task = Task { try await run.run() }
        var sent = 0
        do {
            while sent < 2000 {
                try await run.send(Hoarder.Message.grow, to: "hoarder")
                sent += 1
            }
        } catch {}
        let exits = try await probe.wait(for: "hoarder", .exited)
        guard case .exited(.failed(let failure)) = exits.last?.kind else {
            Issue.record("the hoarder did not fail: \(exits)")
            return
        }
        let error = try #require(failure as? TroupeError)
        #expect(error.code == .storage)
        #expect(error.message.contains("full"))
        _ = try? await task.value
        await store.close()
        // What was committed is intact and readable.
        let reopened = try await SQLiteStore(path: path)
        let kept = try await reopened.checkpoints(of: AgentID(run: "run-f", name: "hoarder"))
        #expect(!kept.isEmpty)
        #expect(try await reopened.read { try $0.texts("PRAGMA integrity_check") } == ["ok"])
        await reopened.close()
    }

    @Test func aReadOnlyDatabaseStopsTheAgentAndKeepsWhatWasCommitted() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file()
        let store = try await SQLiteStore(path: path)
        let blueprint = Blueprint("ro", intensity: .init(maxRestarts: 0, within: .seconds(1)), durability: .durable) {
            Child("adder", Adder())
        }
        let run = try Run(blueprint, id: "run-ro", configuration: .test(store))
        let probe = AgentProbe(run)
        let task = Task { try await run.run() }
        try await run.send(Adder.Message.add(5), to: "adder")
        _ = try await run.call("adder", timeout: .seconds(60)) { Adder.Message.total($0) }
        // The file system turns read-only under the run (SQLite's query_only behaves the same: SQLITE_READONLY).
        _ = try await store.write(transaction: false) { try $0.execute("PRAGMA query_only = 1") }
        await #expect(throws: TroupeError(.storage, "")) { try await run.send(Adder.Message.add(6), to: "adder") }
        _ = try await store.write(transaction: false) { try $0.execute("PRAGMA query_only = 0") }
        try await run.send(Adder.Message.add(6), to: "adder")
        _ = try await run.call("adder", timeout: .seconds(60)) { Adder.Message.total($0) }
        run.shutdown()
        _ = try? await task.value
        #expect(probe.events(of: "adder").contains { if case .started = $0.kind { true } else { false } })
        let last = try #require(try await store.checkpoints(of: AgentID(run: "run-ro", name: "adder")).last)
        #expect(try JSONDecoder().decode(Adder.State.self, from: Data(last.state)).total == 11)
        await store.close()
    }

    @Test func aSecondProcessCannotDriveARunUntilItsOwnerIsGone() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file()
        let record = RunRecord(id: "run-two", blueprint: "b", agents: ["a"])
        let agent = AgentID(run: "run-two", name: "a")
        try await withStore(path) { owner in
            _ = try await owner.attach(record)
            let claim = try await owner.claim(agent, type: "A", durability: .durable, incarnation: 1)
            try await withStore(path) { intruder in
                await #expect(throws: TroupeError(.leaseHeld, "")) { _ = try await intruder.attach(record) }
                do {
                    _ = try await intruder.attach(record)
                } catch let error as TroupeError {
                    #expect(error.message.contains("process \(getpid())"))
                }
                // The owner dies (its pid is now a finished process's), and the second one takes over…
                let dead = Process()
                dead.executableURL = URL(fileURLWithPath: "/bin/true")
                try await launch(dead)
                await waitForExit(dead)
                _ = try await intruder.write { connection in
                    try connection.statement("UPDATE runs SET owner_pid = ? WHERE id = 'run-two'")
                        .run(.integer(Int64(dead.processIdentifier)))
                }
                #expect(try await intruder.attach(record) == true)
                // …after which the old owner's writes are rejected, every one of them as a lost lease: whether its
                // heartbeat or a commit noticed the takeover first.
                for _ in 0..<2 {
                    await #expect(throws: TroupeError(.leaseHeld, "")) {
                        _ = try await owner.commit(Commit(run: "run-two", agent: agent, epoch: claim.epoch))
                    }
                }
            }
        }
    }

    @Test func anUndecodableCheckpointQuarantinesTheAgentAndIsKept() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file()
        let blueprint = Blueprint("q", durability: .durable) { Child("adder", Adder()) }
        try await withStore(path) { store in
            let run = try Run(blueprint, id: "run-q", configuration: .test(store))
            try await withRunning(run) { try await run.send(Adder.Message.add(3), to: "adder") }
            _ = try await store.write { try $0.execute("UPDATE checkpoints SET state = x'7b2262726f6b656e' ") }
        }
        try await withStore(path) { store in
            let run = try Run(blueprint, id: "run-q", configuration: .test(store))
            let probe = AgentProbe(run)
            try await withRunning(run) {
                _ = try await probe.wait(for: "adder", .exited)
                try await Task.sleep(for: .milliseconds(50))
            }
            let quarantine = probe.events(of: "adder").compactMap { event -> String? in
                if case .quarantined(let error) = event.kind { return error }
                return nil
            }
            #expect(quarantine.count == 1)
            #expect(quarantine.first?.contains("'adder'") == true)
            #expect(quarantine.first?.contains("checkpoint #") == true)
            let kept = try await store.checkpoints(of: AgentID(run: "run-q", name: "adder"))
            #expect(kept.last?.state == Array("{\"broken".utf8))
            let status = try await store.read { try $0.texts("SELECT status FROM agents WHERE name = 'adder'") }
            #expect(status == ["quarantined"])
        }
    }

    @Test func messagesForAnAgentThatNoLongerExistsBecomeDeadLetters() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file()
        try await withStore(path) { store in
            _ = try await store.attach(RunRecord(id: "run-o", blueprint: "old", agents: ["adder", "ghost"]))
            let payload = Array(try JSONEncoder().encode(Adder.Message.add(1)))
            _ = try await store.commit(Commit(run: "run-o", agent: nil, epoch: 0, sent: [SentMessage(to: "ghost", payload: payload), SentMessage(to: "adder", payload: Array("{\"gone\":{}}".utf8))]))
            await store.detach("run-o", outcome: .failed, error: "killed")
        }
        try await withStore(path) { store in
            let blueprint = Blueprint("old", durability: .durable) { Child("adder", Adder()) }
            let run = try Run(blueprint, id: "run-o", configuration: .test(store))
            let total = try await withRunning(run) {
                try await run.call("adder", timeout: .seconds(60)) { Adder.Message.total($0) }
            }
            #expect(total == 0)
            let letters = try await store.deadLetterMessages(of: "run-o")
            #expect(letters.count == 2)
            #expect(letters.contains { $0.agent.name == "ghost" && $0.error.contains("no agent 'ghost'") })
            #expect(letters.contains { $0.agent.name == "adder" && $0.error.contains("does not decode") })
            #expect(try await store.pendingMessages(of: "run-o").isEmpty)
        }
    }

    @Test func aResumedRunHandlesWhatTheLastProcessAcceptedAndLogsEvents() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file()
        let blueprint = Blueprint("r", durability: .durable) { Child("adder", Adder()) }
        try await withStore(path) { store in
            let run = try Run(blueprint, id: "run-r", configuration: .test(store))
            try await withRunning(run) {
                try await run.send(Adder.Message.add(1), to: "adder")
                _ = try await run.call("adder", timeout: .seconds(60)) { Adder.Message.total($0) }
            }
            // Accepted, never handled: as if the process had died right after.
            let payload = Array(try JSONEncoder().encode(Adder.Message.add(41)))
            _ = try await store.attach(RunRecord(id: "run-r", blueprint: "r", agents: ["adder"]))
            _ = try await store.commit(Commit(run: "run-r", agent: nil, epoch: 0, sent: [SentMessage(to: "adder", payload: payload)]))
            await store.detach("run-r", outcome: .failed, error: "killed")
        }
        try await withStore(path) { store in
            let run = try Run(blueprint, id: "run-r", configuration: .test(store))
            let total = try await withRunning(run) {
                try await run.call("adder", timeout: .seconds(60)) { Adder.Message.total($0) }
            }
            #expect(total == 42)
            let events = try await store.events(of: "run-r")
            #expect(events.map(\.sequence) == events.map(\.sequence).sorted())
            #expect(events.filter { $0.agent == "adder" && $0.event == "started" }.count == 2)
            let later = try await store.events(of: "run-r", since: events[1].sequence)
            #expect(later.count == events.count - 2)
        }
    }
}

/// Checkpoints three times, then says so.
struct ThreeCheckpoints: Agent {
    struct State: Codable, Sendable { var count = 0 }
    let done: Recorder<Int>

    func initialState() -> State { State() }

    func run(state: inout State, context: AgentContext<Self>) async throws {
        for _ in 0..<3 {
            state.count += 1
            try await context.checkpoint(state)
        }
        done.record(state.count)
    }
}

@Suite(.timeLimit(.minutes(3)))
struct CheckpointEventTests {
    /// The event bus builds no checkpoint event for a store that does not keep them; one that asks keeps each.
    @Test func checkpointsReachTheEventLogOnlyWhenAsked() async throws {
        for asked in [false, true] {
            let directory = try TemporaryDirectory()
            let kinds = try await withStore(directory.file()) { store in
                let done = Recorder<Int>()
                let blueprint = Blueprint("c", durability: .checkpointed) {
                    Child("saver", ThreeCheckpoints(done: done), restart: .temporary)
                }
                var configuration = Run.Configuration.test(store)
                configuration.checkpointEvents = asked
                let run = try Run(blueprint, id: "run-c", configuration: configuration)
                let events = run.events()
                let seen = Task { () -> Int in
                    var count = 0
                    for await event in events {
                        if case .checkpointed = event.kind { count += 1 }
                        if count == 3 { break }
                    }
                    return count
                }
                try await withRunning(run) { _ = try await done.wait(forCount: 1) }
                // The run's own subscribers see every checkpoint either way.
                #expect(await seen.value == 3)
                return try await store.events(of: "run-c").filter { $0.agent == "saver" }.map(\.event)
            }
            // Asked: the first incarnation's initial state, then its three.
            #expect(kinds.filter { $0 == "checkpointed" }.count == (asked ? 4 : 0), "checkpointEvents \(asked): \(kinds)")
            #expect(kinds.contains("started"))
        }
    }
}

@Suite(.timeLimit(.minutes(3)))
struct DatabaseFileTests {
    func mode(_ path: String) -> Int? {
        (try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? nil
    }

    @Test func theDatabaseItsLogFilesAndItsNewDirectoryArePrivate() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/nested/troupe.db"
        try await withStore(path) { store in
            let run = try Run(Blueprint("p", durability: .durable) { Child("adder", Adder()) }, id: "run-p", configuration: .test(store))
            try await withRunning(run) {
                try await run.send(Adder.Message.add(1), to: "adder")
                _ = try await run.call("adder", timeout: .seconds(60)) { Adder.Message.total($0) }
                #expect(mode(path + "-wal") == 0o600)
                #expect(mode(path + "-shm") == 0o600)
            }
        }
        #expect(mode(path) == 0o600)
        #expect(mode(directory.path + "/nested") == 0o700)
    }

    @Test func aCleanCloseLeavesEveryCommitInTheDatabaseFileAlone() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file()
        try await withStore(path) { store in
            let run = try Run(Blueprint("w", durability: .durable) { Child("adder", Adder()) }, id: "run-w", configuration: .test(store))
            try await withRunning(run) {
                for _ in 0..<50 { try await run.send(Adder.Message.add(2), to: "adder") }
                #expect(try await run.call("adder", timeout: .seconds(60)) { Adder.Message.total($0) } == 100)
            }
        }
        #expect((try FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int ?? 0) == 0)
        // A copy of the database file alone holds everything.
        let copy = directory.file("copy.db")
        try FileManager.default.copyItem(atPath: path, toPath: copy)
        try await withStore(copy) { store in
            let latest = try await store.checkpoints(of: AgentID(run: "run-w", name: "adder")).last
            let state = try JSONDecoder().decode(Adder.State.self, from: Data(try #require(latest).state))
            #expect(state.total == 100)
            let status = try await store.read { try $0.texts("SELECT status FROM runs WHERE id = 'run-w'") }
            #expect(status == ["stopped"])
        }
    }

    /// A commit that SQLite refuses after its checkpoint was written (its message does not fit) rolls back whole, and
    /// the writer forgets what it had noted of the agent's checkpoints: the chain, retention and the run's head sum
    /// stay exact.
    @Test func aRolledBackCommitLeavesTheCheckpointChainExact() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file()
        let agent = AgentID(run: "run-s", name: "a")
        let record = RunRecord(id: "run-s", blueprint: "s", agents: ["a", "b"])
        try await withStore(path, .init(sizeLimit: 256 * 1024)) { store in
            _ = try await store.attach(record)
            let claim = try await store.claim(agent, type: "A", durability: .durable, incarnation: 1)
            func commit(_ sequence: UInt64, sending payload: [UInt8]? = nil) async throws {
                let state = Checkpoint(agent: agent, epoch: claim.epoch, sequence: sequence, stateVersion: 1, state: Array("\(sequence)".utf8))
                _ = try await store.commit(
                    Commit(run: agent.run, agent: agent, epoch: claim.epoch, checkpoint: state, sent: payload.map { [SentMessage(to: "b", payload: $0)] } ?? [])
                )
            }
            for sequence in UInt64(1)...3 { try await commit(sequence) }
            let full = await #expect(throws: TroupeError.self) { try await commit(4, sending: Array(repeating: 7, count: 512 * 1024)) }
            #expect(full?.code == .storage)
            try await commit(4)
            try await commit(5)
            #expect(try await store.checkpoints(of: agent).map(\.sequence) == [3, 4, 5])
            let refused = await #expect(throws: TroupeError.self) { try await commit(5) }
            #expect(refused?.description.contains("does not follow #5") == true)
            try await commit(6)
            #expect(try await store.checkpoints(of: agent).map(\.sequence) == [4, 5, 6])
            #expect(try await store.check().problems.isEmpty)
            await store.detach(agent.run, outcome: .stopped, error: nil)
        }
    }

    /// Retention is exact across processes and changes of retention: a claim reads the agent's chain (by joins as
    /// deep as retention, and whole when it goes on past that), and its next commit drops what is over.
    @Test func retentionHoldsAcrossResumesAndAChangeOfRetention() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file()
        let agent = AgentID(run: "run-r", name: "a")
        let record = RunRecord(id: "run-r", blueprint: "r", agents: ["a"])
        func commit(_ sequences: ClosedRange<UInt64>, retention: Int) async throws -> [UInt64] {
            try await withStore(path, .init(retention: retention)) { store in
                _ = try await store.attach(record)
                let claim = try await store.claim(agent, type: "A", durability: .durable, incarnation: 1)
                for sequence in sequences {
                    let state = Checkpoint(agent: agent, epoch: claim.epoch, sequence: sequence, stateVersion: 1, state: [1])
                    _ = try await store.commit(Commit(run: agent.run, agent: agent, epoch: claim.epoch, checkpoint: state))
                }
                await store.detach(agent.run, outcome: .stopped, error: nil)
                #expect(try await store.check().problems.isEmpty)
                return try await store.checkpoints(of: agent).map(\.sequence)
            }
        }
        #expect(try await commit(1...18, retention: 20) == Array(1...18))
        // Longer than the joins go (16): read whole.
        #expect(try await commit(19...19, retention: 20) == Array(1...19))
        #expect(try await commit(20...21, retention: 20) == Array(2...21))
        // A smaller retention drops the surplus at the next checkpoint.
        #expect(try await commit(22...22, retention: 3) == [20, 21, 22])
        #expect(try await commit(23...24, retention: 3) == [22, 23, 24])
    }

    /// A database whose agent `run-d/counter` committed checkpoints #1…#50 (state: the number), with a copy of the
    /// file as it was after #5.
    private func databaseWithAStaleCopy(_ directory: borrowing TemporaryDirectory) async throws -> (path: String, old: String) {
        let path = directory.file()
        let agent = AgentID(run: "run-d", name: "counter")
        let record = RunRecord(id: "run-d", blueprint: "d", agents: ["counter"])
        func commit(_ sequences: ClosedRange<UInt64>) async throws {
            try await withStore(path, .init(retention: 100)) { store in
                _ = try await store.attach(record)
                let claim = try await store.claim(agent, type: "Counter", durability: .durable, incarnation: 1)
                for sequence in sequences {
                    let state = Checkpoint(agent: agent, epoch: claim.epoch, sequence: sequence, stateVersion: 1, state: Array("\(sequence)".utf8))
                    _ = try await store.commit(Commit(run: agent.run, agent: agent, epoch: claim.epoch, checkpoint: state))
                }
                await store.detach(agent.run, outcome: .stopped, error: nil)
            }
        }
        try await commit(1...5)
        let old = directory.file("old.db")
        try FileManager.default.copyItem(atPath: path, toPath: old)
        try await commit(6...50)
        return (path, old)
    }

    /// Writes `pages` (1-based) of `old` over the same pages of `path`.
    private func restore(_ pages: [Int], of path: String, from old: String, pageSize: Int) throws {
        let stale = try #require(FileManager.default.contents(atPath: old))
        let file = try #require(FileHandle(forUpdatingAtPath: path))
        for page in pages {
            let offset = (page - 1) * pageSize
            try #require(offset + pageSize <= stale.count)
            try file.seek(toOffset: UInt64(offset))
            try file.write(contentsOf: stale[offset..<(offset + pageSize)])
        }
        try file.close()
    }

    /// The pages of table `name`, and the page size.
    private func pages(of name: String, in path: String) async throws -> (pages: [Int], size: Int) {
        try await withStore(path) { store in
            try await store.read { connection in
                (
                    try connection.texts("SELECT CAST(pageno AS TEXT) FROM dbstat WHERE name = ?", .text(name)).compactMap { Int($0) },
                    Int(try connection.scalar("PRAGMA page_size") ?? 4096)
                )
            }
        }
    }

    @Test func aStaleCheckpointPageIsRefusedInsteadOfResumingFromIt() async throws {
        let directory = try TemporaryDirectory()
        let (path, old) = try await databaseWithAStaleCopy(directory)
        let agent = AgentID(run: "run-d", name: "counter")
        // The checkpoints table's pages go back to what they were after checkpoint #5; its head still names #50.
        let (pages, size) = try await pages(of: "checkpoints", in: path)
        #expect(!pages.isEmpty)
        try restore(pages, of: path, from: old, pageSize: size)

        try await withStore(path) { store in
            let listing = await #expect(throws: TroupeError.self) { try await store.checkpoints(of: agent) }
            #expect(listing?.code == .corruptCheckpoint)
            #expect(listing?.description.contains("troupe db check") == true)
            _ = try await store.attach(RunRecord(id: "run-d", blueprint: "d", agents: ["counter"]))
            let claim = await #expect(throws: TroupeError.self) {
                try await store.claim(agent, type: "Counter", durability: .durable, incarnation: 1)
            }
            #expect(claim?.code == .corruptCheckpoint)
            #expect(claim?.description.contains("#5,") == true && claim?.description.contains("#50 last") == true)
            await store.detach(agent.run, outcome: .failed, error: nil)
            let problems = try await store.check().problems
            #expect(problems.contains { $0.contains("agent 'counter' of run run-d") && $0.contains("#50") }, "\(problems)")
        }
    }

    @Test func aStalePageOfHeadsIsRefusedInsteadOfResumingFromAnOlderCheckpoint() async throws {
        let directory = try TemporaryDirectory()
        let (path, old) = try await databaseWithAStaleCopy(directory)
        let agent = AgentID(run: "run-d", name: "counter")
        // The heads go back to naming #5, which is still kept (retention 100): only the run's sum can tell.
        let (pages, size) = try await pages(of: "checkpoint_heads", in: path)
        #expect(pages.count == 1)
        try restore(pages, of: path, from: old, pageSize: size)

        try await withStore(path) { store in
            let listing = await #expect(throws: TroupeError.self) { try await store.checkpoints(of: agent) }
            #expect(listing?.code == .corruptCheckpoint)
            #expect(listing?.description.contains("add up to 5,") == true)
            let history = await #expect(throws: TroupeError.self) { try await store.checkpointHistory(of: agent) }
            #expect(history?.code == .corruptCheckpoint)
            let resume = await #expect(throws: TroupeError.self) {
                _ = try await store.attach(RunRecord(id: "run-d", blueprint: "d", agents: ["counter"]))
            }
            #expect(resume?.code == .corruptCheckpoint)
            #expect(resume?.description.contains("troupe db check") == true)
            let problems = try await store.check().problems
            #expect(problems.contains { $0.contains("run run-d") && $0.contains("add up to 5,") }, "\(problems)")
        }
    }

    /// Every page of the file in turn goes back to its version from after checkpoint #5 of 50: a listing and a
    /// resume either read #50 or refuse. None hands back an older state.
    @Test func noSinglePageGoneStaleHandsBackAnOlderCheckpoint() async throws {
        let directory = try TemporaryDirectory()
        let (path, old) = try await databaseWithAStaleCopy(directory)
        let agent = AgentID(run: "run-d", name: "counter")
        let size: Int = try await pages(of: "checkpoints", in: path).size
        let current = try #require(FileManager.default.contents(atPath: path))
        let stale = try #require(FileManager.default.contents(atPath: old))
        let count: Int = min(current.count, stale.count) / size
        var differing = 0
        var refused = 0
        for page in 1...count {
            let start: Int = (page - 1) * size
            let range = start..<(start + size)
            guard current[range] != stale[range] else { continue }
            differing += 1
            let copy = directory.file("page-\(page).db")
            try current.write(to: URL(fileURLWithPath: copy))
            try restore([page], of: copy, from: old, pageSize: size)
            var outcomes: [String] = []
            do {
                try await withStore(copy) { store in
                    let listed = try await store.checkpoints(of: agent).last
                    outcomes.append("listing #\(listed?.sequence ?? 0) \(String(decoding: listed?.state ?? [], as: UTF8.self))")
                    _ = try await store.attach(RunRecord(id: "run-d", blueprint: "d", agents: ["counter"]))
                    let claim = try await store.claim(agent, type: "Counter", durability: .durable, incarnation: 1)
                    outcomes.append("claim #\(claim.latest?.sequence ?? 0) \(String(decoding: claim.latest?.state ?? [], as: UTF8.self))")
                    await store.detach(agent.run, outcome: .stopped, error: nil)
                }
            } catch is TroupeError {
                refused += 1
            }
            for outcome in outcomes {
                #expect(outcome.hasSuffix("#50 50"), "page \(page) gone stale: \(outcome)")
            }
        }
        #expect(differing >= 3)
        #expect(refused >= 2)
    }
}
