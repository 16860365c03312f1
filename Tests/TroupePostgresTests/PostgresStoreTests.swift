import Foundation
import Testing
import Troupe
import TroupeTestKit
import TroupeTestSupport
@testable import TroupePostgres

/// What the PostgreSQL store promises beyond the shared contract: its migrations, fencing in the database when
/// another host takes a run over, a lost session opened again, server-side cancellation, clear connection errors.
@Suite(.enabled(if: TestServer.enabled, "set TROUPE_TEST_POSTGRES (.ci/run starts a server)"), .timeLimit(.minutes(4)))
struct PostgresStoreTests {
    static let run: RunID = "run-pg"
    static let agent = AgentID(run: run, name: "a")
    static let record = RunRecord(id: run, blueprint: "pg", agents: ["a"])

    /// Opens a store on a fresh database, runs `body`, closes it and drops the database.
    func withDatabase(_ body: (TestDatabase) async throws -> Void) async throws {
        try await TestServer.withDatabase { database in
            try await body(database)
        }
    }

    func checkpoint(_ epoch: UInt64, _ sequence: UInt64, _ text: String) -> Checkpoint {
        Checkpoint(agent: Self.agent, epoch: epoch, sequence: sequence, stateVersion: 1, state: Array(text.utf8))
    }

    func code(_ body: () async throws -> Void) async -> TroupeError.Code? {
        do {
            try await body()
            return nil
        } catch let error as TroupeError {
            return error.code
        } catch {
            Issue.record("not a TroupeError: \(error)")
            return nil
        }
    }

    // MARK: Migrations

    /// The embedded list must name every file in `migrations/postgres/`, in order, with the same text.
    @Test func theEmbeddedMigrationsMatchTheFolder() throws {
        let folder = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("migrations/postgres")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".sql") }.sorted()
        #expect(files == Migrator.migrations.map(\.name))
        for (index, migration) in Migrator.migrations.enumerated() {
            #expect(migration.id == index + 1)
            let text = try String(contentsOf: folder.appendingPathComponent(migration.name), encoding: .utf8)
            #expect(text == migration.sql, "\(migration.name) differs from the embedded copy")
            #expect(text.hasPrefix("-- "), "\(migration.name) must open with a comment saying what and why")
        }
    }

    @Test func openingTwiceAtOnceMigratesOnce() async throws {
        try await withDatabase { database in
            async let first = PostgresStore(url: database.url)
            async let second = PostgresStore(url: database.url)
            let stores = try await [first, second]
            for store in stores { await store.close() }
            let rows = try PGConnection(url: database.url).query("SELECT name, checksum FROM troupe.troupe_migrations ORDER BY id")
            #expect(rows.count == Migrator.migrations.count)
            #expect(rows.text(0, 1) == Migrator.migrations[0].checksum)
        }
    }

    @Test func aDatabaseOfANewerTroupeIsRefusedUntouched() async throws {
        try await withDatabase { database in
            try await PostgresStore(url: database.url).close()
            try await database.execute("INSERT INTO troupe.troupe_migrations VALUES (999, '0999_future.sql', 'x', now())")
            let refused = await code { _ = try await PostgresStore(url: database.url) }
            #expect(refused == .futureSchema)
            let rows = try PGConnection(url: database.url).query("SELECT count(*) FROM troupe.troupe_migrations")
            #expect(rows.int64(0, 0) == Int64(Migrator.migrations.count + 1))
        }
    }

    @Test func anEditedMigrationIsRefused() async throws {
        try await withDatabase { database in
            try await PostgresStore(url: database.url).close()
            try await database.execute("UPDATE troupe.troupe_migrations SET checksum = '0000000000000000' WHERE id = 1")
            #expect(await code { _ = try await PostgresStore(url: database.url) } == .schemaMismatch)
        }
    }

    @Test func aTroupeSchemaOfAnotherProgramIsRefusedUntouched() async throws {
        try await withDatabase { database in
            try await database.execute("CREATE SCHEMA troupe; CREATE TABLE troupe.orders (id int)")
            #expect(await code { _ = try await PostgresStore(url: database.url) } == .schemaMismatch)
            let tables = try PGConnection(url: database.url).query(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'troupe'"
            )
            #expect(tables.count == 1 && tables.text(0, 0) == "orders")
        }
    }

    @Test func readOnlyOpeningCreatesNothing() async throws {
        try await withDatabase { database in
            let refused = await code { _ = try await PostgresStore(url: database.url, configuration: .init(readOnly: true)) }
            #expect(refused == .notADatabase)
            let schemas = try PGConnection(url: database.url).query("SELECT 1 FROM pg_namespace WHERE nspname = 'troupe'")
            #expect(schemas.count == 0, "a read-only open created the schema")
        }
    }

    // MARK: Fencing across hosts

    /// Another host takes the run over once the owner's heartbeat is older than the lease timeout. The former owner
    /// still believes it holds the lease: the database rejects its writes, and it learns that it lost the run.
    @Test func aTakeoverFencesTheFormerOwnerInTheDatabase() async throws {
        try await withDatabase { database in
            // Silent from here on: it renews its heartbeat only with its writes (its idle heartbeat is an hour away).
            let former = try await PostgresStore(url: database.url, configuration: .init(heartbeat: .seconds(3600)))
            _ = try await former.attach(Self.record)
            let claim = try await former.claim(Self.agent, type: "A", durability: .durable, incarnation: 1)
            _ = try await former.commit(Commit(run: Self.run, agent: Self.agent, epoch: claim.epoch, checkpoint: checkpoint(claim.epoch, 1, "one")))
            // The former owner as the others see it: a worker whose heartbeat went silent (stopped with SIGSTOP, or
            // cut off from the database), its session still holding its liveness lock.
            try await database.execute("UPDATE troupe.workers SET heartbeat_at = now() - interval '1 minute'")
            let successor = try await PostgresStore(url: database.url)
            #expect(try await successor.attach(Self.record) == true)
            let resumed = try await successor.claim(Self.agent, type: "A", durability: .durable, incarnation: 1)
            #expect(resumed.latest?.state == Array("one".utf8))
            let rejected = await code {
                _ = try await former.commit(Commit(run: Self.run, agent: Self.agent, epoch: claim.epoch, checkpoint: checkpoint(claim.epoch, 2, "zombie")))
            }
            #expect(rejected == .leaseHeld)
            let loss = await former.leaseLoss(of: Self.run)
            #expect(loss?.code == .leaseHeld)
            #expect(try await successor.checkpoints(of: Self.agent).map(\.sequence) == [1], "the zombie's checkpoint was written")
            // And every later write of the run, not only the first.
            #expect(await code { try await former.recordStep(Self.agent, epoch: claim.epoch, key: "m1/x#1", result: [1]) } == .leaseHeld)
            await successor.detach(Self.run, outcome: .stopped, error: nil)
            await successor.close()
            await former.close()
        }
    }

    /// Commits that meet in one batch go to the database together; each keeps its own outcome: a commit fenced by
    /// this process's record or by the agent's row in the database fails alone and writes nothing, and every other
    /// one gets the ids of exactly the messages it sent.
    @Test func commitsBatchedTogetherKeepTheirOwnOutcomes() async throws {
        try await withDatabase { database in
            let names = (0..<40).map { "agent-\($0)" }
            let record = RunRecord(id: Self.run, blueprint: "pg", agents: names)
            let store = try await PostgresStore(url: database.url)
            _ = try await store.attach(record)
            var epochs: [String: UInt64] = [:]
            for name in names {
                epochs[name] = try await store.claim(AgentID(run: Self.run, name: name), type: "A", durability: .durable, incarnation: 1).epoch
            }
            // Agent 7 was claimed again elsewhere (its row's epoch moved on); agent 3 commits with an old epoch.
            try await database.execute("UPDATE troupe.agents SET epoch = epoch + 1 WHERE name = 'agent-7'")
            let outcomes = try await withThrowingTaskGroup(of: (String, Result<[Int64], TroupeError>).self) { group in
                for name in names {
                    let agent = AgentID(run: Self.run, name: name)
                    let epoch = name == "agent-3" ? epochs[name]! - 1 : epochs[name]!
                    group.addTask {
                        let commit = Commit(
                            run: Self.run, agent: agent, epoch: epoch,
                            checkpoint: Checkpoint(agent: agent, epoch: epoch, sequence: 1, stateVersion: 1, state: Array(name.utf8)),
                            sent: [
                                SentMessage(to: "sink", payload: Array("first from \(name)".utf8)),
                                SentMessage(to: "sink", payload: Array("second from \(name)".utf8)),
                            ]
                        )
                        do { return (name, .success(try await store.commit(commit))) } catch let error as TroupeError { return (name, .failure(error)) }
                    }
                }
                return try await group.reduce(into: [String: Result<[Int64], TroupeError>]()) { $0[$1.0] = $1.1 }
            }
            let connection = try PGConnection(url: database.url)
            for name in names {
                switch outcomes[name] {
                case .failure(let error):
                    #expect(["agent-3", "agent-7"].contains(name) && error.code == .fenced, "\(name): \(error)")
                case .success(let ids):
                    #expect(!["agent-3", "agent-7"].contains(name), "\(name)'s fenced commit was accepted")
                    let rows = try connection.query(
                        "SELECT convert_from(payload, 'UTF8'), sender FROM troupe.messages WHERE id = ANY($1::int8[]) ORDER BY id",
                        .text("{" + ids.map(String.init).joined(separator: ",") + "}")
                    )
                    #expect((0..<rows.count).map { rows.text($0, 0) } == ["first from \(name)", "second from \(name)"], "\(name)'s ids \(ids)")
                    #expect((0..<rows.count).allSatisfy { rows.text($0, 1) == name })
                case nil:
                    Issue.record("no outcome for \(name)")
                }
            }
            let written = try connection.query(
                "SELECT a.name FROM troupe.checkpoints c JOIN troupe.agents a ON a.id = c.agent_id ORDER BY a.name"
            )
            #expect(Set((0..<written.count).compactMap { written.text($0, 0) }) == Set(names).subtracting(["agent-3", "agent-7"]))
            #expect(try connection.scalar("SELECT count(*) FROM troupe.messages") == 76)
            await store.detach(Self.run, outcome: .stopped, error: nil)
            await store.close()
        }
    }

    /// A worker stops a run only to hand it on (draining): the run goes back to pending with its final commit, in
    /// one statement, so no crash of the worker can leave it stopped and unclaimed; a process driving its own run
    /// leaves it stopped, for `troupe resume`.
    @Test func aWorkerHandsOnTheRunsItStops() async throws {
        try await withDatabase { database in
            let worker = try await PostgresStore(url: database.url)
            _ = try await worker.registerWorker(WorkerRegistration(build: "b", capacity: 1, blueprints: ["pg"]))
            _ = try await worker.attach(Self.record)
            await worker.detach(Self.run, outcome: .stopped, error: nil)
            #expect(try await worker.run(Self.run).status == .pending)
            let next = try await PostgresStore(url: database.url)
            _ = try await next.registerWorker(WorkerRegistration(build: "b", capacity: 1, blueprints: ["pg"]))
            #expect(try await next.claimRuns(limit: 1).map(\.id) == [Self.run])

            let own = try await PostgresStore(url: database.url)
            _ = try await own.attach(RunRecord(id: "run-own", blueprint: "pg", agents: ["a"]))
            await own.detach("run-own", outcome: .stopped, error: nil)
            #expect(try await own.run("run-own").status == .stopped)
            for store in [worker, next, own] { await store.close() }
        }
    }

    /// A live worker (its liveness lock held, a recent heartbeat) keeps its run: a second attach is refused and
    /// says who.
    @Test func aLiveOwnerKeepsItsRun() async throws {
        try await withDatabase { database in
            let owner = try await PostgresStore(url: database.url)
            _ = try await owner.attach(Self.record)
            let other = try await PostgresStore(url: database.url)
            do {
                _ = try await other.attach(Self.record)
                Issue.record("a run with a live owner was attached")
            } catch let error as TroupeError {
                #expect(error.code == .leaseHeld)
                #expect(error.message.contains("process \(getpid())"), "\(error.message)")
            }
            await other.close()
            await owner.close()
        }
    }

    /// Advisory locks are per database: a live worker with the same id in another database does not keep a dead
    /// worker of this one alive.
    @Test func anotherDatabasesWorkerDoesNotKeepADeadOneAlive() async throws {
        try await TestServer.withDatabase { other in try await withDatabase { database in
            // Worker 1 of the other database, alive.
            let elsewhere = try await PostgresStore(url: other.url)
            _ = try await elsewhere.attach(Self.record)
            // Worker 1 of this one, dead (a row without its lock), owning a run.
            try await PostgresStore(url: database.url).close()
            try await database.execute(
                """
                INSERT INTO troupe.workers (host, pid, build, started_at, heartbeat_at) VALUES ('gone', 1, '', now(), now());
                INSERT INTO troupe.runs (id, blueprint, status, created_at, updated_at, owner_worker, owner_pid, owner_host, lease_token)
                VALUES ('\(Self.run)', 'pg', 'running', now(), now(), 1, 1, 'gone', 1)
                """
            )
            let store = try await PostgresStore(url: database.url)
            #expect(try await store.attach(Self.record) == true, "the dead worker's run was not taken over")
            await store.close()
            await elsewhere.close()
        } }
    }

    /// A worker found dead is evicted by another, which claims its runs; the evicted one's writes are rejected.
    @Test func aDeadWorkerIsEvictedAndItsRunsClaimed() async throws {
        try await withDatabase { database in
            let silent = try await PostgresStore(url: database.url, configuration: .init(heartbeat: .seconds(3600)))
            _ = try await silent.attach(Self.record)
            let claim = try await silent.claim(Self.agent, type: "A", durability: .durable, incarnation: 1)
            try await database.execute("UPDATE troupe.workers SET heartbeat_at = now() - interval '1 minute'")
            let worker = try await PostgresStore(url: database.url)
            let id = try await worker.registerWorker(WorkerRegistration(build: "test", capacity: 4, blueprints: ["pg"]))
            #expect(try await worker.evictDeadWorkers() == 1)
            #expect(try await worker.workers().map(\.id) == [id], "the silent worker was not evicted")
            #expect(try await worker.run(Self.run).status == .crashed)
            let claimed = try await worker.claimRuns(limit: 10)
            #expect(claimed.map(\.id) == [Self.run] && claimed.first?.blueprint == "pg")
            #expect(try await worker.claimRuns(limit: 10).isEmpty, "a run was claimed twice")
            #expect(try await worker.attach(Self.record) == true)
            let summary = try await worker.run(Self.run)
            #expect(summary.owner?.worker == id && summary.status == .running && summary.lease == 2, "\(summary)")
            let rejected = await code {
                _ = try await silent.commit(Commit(run: Self.run, agent: Self.agent, epoch: claim.epoch, checkpoint: checkpoint(claim.epoch, 1, "zombie")))
            }
            #expect(rejected == .leaseHeld)
            await worker.close()
            await silent.close()
        }
    }

    /// The refusals that prove the server serves no session (it is starting or recovering from a crash) are told
    /// apart from one that does not: a server shutting down smartly still serves the sessions it has, and another
    /// worker's session may be one of them. Messages as libpq reports them (PostgreSQL 15's words).
    @Test func onlyAStartingOrRecoveringServerProvesNoOneIsServed() {
        let refusal = "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  "
        for words in [
            "the database system is starting up",
            "the database system is not yet accepting connections\nDETAIL:  Consistent recovery state has not been yet reached.",
            "the database system is in recovery mode",
        ] {
            #expect(PostgresError(sqlState: "", message: refusal + words).saysServerIsRecovering, "\(words)")
        }
        for words in ["the database system is shutting down", "sorry, too many clients already", "Connection refused"] {
            #expect(!PostgresError(sqlState: "", message: refusal + words).saysServerIsRecovering, "\(words)")
        }
        #expect(!PostgresError(sqlState: "57P03", message: "the database system is starting up").saysServerIsRecovering,
            "an error inside a session is not a refused connection")
    }

    /// A worker that cannot renew its heartbeat for four intervals stops its runs without waiting to learn whether
    /// it was evicted, then gives its registration up (its runs released for the others) once it can write again.
    @Test func aSilentWorkerFencesItself() async throws {
        try await withDatabase { database in
            let store = try await PostgresStore(url: database.url, configuration: .init(heartbeat: .milliseconds(100)))
            _ = try await store.attach(Self.record)
            // Hold the worker's row: its heartbeats wait behind the lock, as behind a partition.
            let blocker = try PGConnection(url: database.url)
            try blocker.execute("BEGIN; SELECT * FROM troupe.workers FOR UPDATE")
            let loss = try #require(await store.leaseLoss(of: Self.run))
            #expect(loss.code == .leaseHeld && loss.message.contains("self-fence"), "\(loss.message)")
            try blocker.execute("ROLLBACK")
            let reader = try PGConnection(url: database.url)
            let deadline = ContinuousClock.now + .seconds(20)
            while ContinuousClock.now < deadline {
                if try reader.query("SELECT 1 FROM troupe.runs WHERE owner_worker IS NULL").count == 1 { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(try reader.query("SELECT 1 FROM troupe.runs WHERE owner_worker IS NULL").count == 1, "the run was not released")
            #expect(try reader.query("SELECT 1 FROM troupe.workers").count == 0, "the fenced registration was kept")
            await store.close()
        }
    }

    // MARK: Sessions

    /// The server ends every session of the store (a restart, an administrator): the next commit and the next
    /// read open new ones, and the lease, being a row, is still this process's.
    @Test func lostSessionsAreOpenedAgain() async throws {
        try await withDatabase { database in
            let store = try await PostgresStore(url: database.url)
            _ = try await store.attach(Self.record)
            let claim = try await store.claim(Self.agent, type: "A", durability: .durable, incarnation: 1)
            _ = try await store.commit(Commit(run: Self.run, agent: Self.agent, epoch: claim.epoch, checkpoint: checkpoint(claim.epoch, 1, "one")))
            #expect(try await store.checkpoints(of: Self.agent).count == 1)
            let admin = try PGConnection(url: database.adminURL)
            let ended = try admin.query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                .text(database.name)
            )
            #expect(ended.count >= 2, "the store's writer and reader sessions were not found")
            _ = try await store.commit(Commit(run: Self.run, agent: Self.agent, epoch: claim.epoch, checkpoint: checkpoint(claim.epoch, 2, "two")))
            #expect(try await store.checkpoints(of: Self.agent).map(\.sequence) == [1, 2])
            await store.detach(Self.run, outcome: .stopped, error: nil)
            #expect(try await store.run(Self.run).status == .stopped)
            await store.close()
        }
    }

    /// The worker's side sees its session end first (a network cut it noticed before the server did): the server's
    /// process for that session lives on, idle, still holding the worker's liveness lock. The next write opens a
    /// new session, ends the old one (its own) and takes the lock again: the registration and the lease stay.
    /// Before, the lock it could not take was read as an eviction, and the worker gave up every run it drove.
    @Test func aSessionLostOnlyOnThisSideIsEndedAndItsLivenessLockTakenAgain() async throws {
        try await withDatabase { database in
            let upstream = try #require(URLComponents(string: database.url)?.port)
            let proxy = try RecoveringProxy(upstream: upstream)
            defer { proxy.close() }
            let store = try await PostgresStore(url: proxy.url(database: database.name))
            _ = try await store.attach(Self.record)
            let claim = try await store.claim(Self.agent, type: "A", durability: .durable, incarnation: 1)
            _ = try await store.commit(Commit(run: Self.run, agent: Self.agent, epoch: claim.epoch, checkpoint: checkpoint(claim.epoch, 1, "one")))
            let registered = try await store.workers().map(\.id)
            #expect(registered.count == 1)
            let admin = try PGConnection(url: database.url)
            let holders = """
                SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = 7300 AND objsubid = 2 AND granted
                AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                """
            let before = try admin.query(holders)
            try #require(before.count == 1, "the worker holds no liveness lock")
            let oldSession = before.int64(0, 0)

            proxy.cutClientsOnly()
            _ = try await store.commit(Commit(run: Self.run, agent: Self.agent, epoch: claim.epoch, checkpoint: checkpoint(claim.epoch, 2, "two")))
            #expect(try await store.checkpoints(of: Self.agent).map(\.sequence) == [1, 2])
            #expect(try await store.workers().map(\.id) == registered, "the worker gave its registration up")
            let after = try admin.query(holders)
            #expect(after.count == 1 && after.int64(0, 0) != oldSession, "the lock is not held by a new session")
            #expect(try admin.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1", .int(oldSession)).count == 0, "the old session lives on")
            let summary = try await store.run(Self.run)
            #expect(summary.lease == 1 && summary.owner?.worker == registered.first, "\(summary)")
            await store.close()
        }
    }

    /// Cancelling a read cancels its statement on the server: a 60-second query ends at once.
    @Test func cancellingAReadCancelsItsStatementOnTheServer() async throws {
        try await withDatabase { database in
            let store = try await PostgresStore(url: database.url)
            let started = ContinuousClock.now
            let slow = Task { try await store.read { connection in try connection.query("SELECT pg_sleep(60)").count } }
            // Wait (bounded) until the server runs it, then cancel.
            let admin = try PGConnection(url: database.url)
            let deadline = ContinuousClock.now + .seconds(20)
            while ContinuousClock.now < deadline {
                let running = try admin.query("SELECT 1 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(60)%' AND state = 'active'")
                if running.count > 0 { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            slow.cancel()
            await #expect(throws: CancellationError.self) { _ = try await slow.value }
            #expect(ContinuousClock.now - started < .seconds(30), "the read ran on after its cancellation")
            await store.close()
        }
    }

    // MARK: Errors

    @Test func anUnreachableServerIsAClearErrorWithoutThePassword() async throws {
        // A port nothing listens on: connection refused at once.
        do {
            _ = try await PostgresStore(url: "postgres://troupe:s3cret@127.0.0.1:1/troupe")
            Issue.record("connected to nothing")
        } catch let error as TroupeError {
            #expect(error.code == .storage)
            #expect(error.message.contains("cannot connect to the PostgreSQL server at postgres://troupe@127.0.0.1:1/troupe"), "\(error.message)")
            #expect(!error.message.contains("s3cret"))
        }
    }

    @Test(arguments: [
        ("postgres://u:secret@h:5432/db", "postgres://u@h:5432/db"),
        ("postgresql://u@h/db?sslmode=require", "postgresql://u@h/db?sslmode=require"),
        ("postgres://h/db", "postgres://h/db"),
        ("host=h password=secret dbname=db", "host=h dbname=db"),
    ])
    func urlsAreShownWithoutPasswords(url: String, shown: String) {
        #expect(PGConnection.redacted(url) == shown)
    }
}

/// Kills a durable counting pipeline on PostgreSQL with SIGKILL at random moments, resumes it each time, and checks
/// that every number was counted exactly once and that each start took the run over once.
@Suite(.enabled(if: TestServer.enabled, "set TROUPE_TEST_POSTGRES (.ci/run starts a server)"), .timeLimit(.minutes(5)))
struct PostgresCrashTests {
    @Test func killNineAtRandomMomentsLosesNothingAndCountsNothingTwice() async throws {
        try await TestServer.withDatabase { database in
            let count = 30_000
            let outcome = try await CrashLoop.run(database: database.url, run: "run-crash", count: count, rounds: 8, delay: 50...300)
            #expect(outcome.kills >= 3, "the pipeline finished before it could be killed a few times; raise the count")
            let store = try await PostgresStore(url: database.url)
            let last = try #require(try await store.checkpoints(of: AgentID(run: "run-crash", name: "counter")).last)
            let state = try JSONDecoder().decode(CrashLoop.CounterState.self, from: Data(last.state))
            #expect(state.count == count)
            #expect(state.sum == count * (count + 1) / 2)
            #expect(state.duplicates == 0)
            #expect(state.gaps == 0)
            #expect(try await store.pendingMessages(of: "run-crash").isEmpty)
            #expect(try await store.check().problems.isEmpty)
            let leases = try await store.read { try $0.scalar("SELECT lease_token FROM runs WHERE id = 'run-crash'") }
            #expect(leases == Int64(outcome.owners))
            await store.close()
        }
    }
}

/// The `troupe` binary on a PostgreSQL URL: a durable run to its end, the listing verbs, a command queued for a
/// stopped run, and no password in anything it prints.
@Suite(.enabled(if: TestServer.enabled, "set TROUPE_TEST_POSTGRES (.ci/run starts a server)"), .timeLimit(.minutes(3)))
struct PostgresCommandLineTests {
    static let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("troupe")

    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs `troupe ARGUMENTS` with `TROUPE_DATABASE` set to `database` (the URL, with a password libpq ignores
    /// under trust authentication).
    func troupe(_ database: String, _ arguments: String...) async throws -> Output {
        let process = Process()
        process.executableURL = Self.binary
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["TROUPE_DATABASE"] = database
        process.environment = environment
        let (out, err) = (await makePipe(), await makePipe())
        process.standardOutput = out
        process.standardError = err
        try await launch(process)
        let watchdog = watch(process, for: .seconds(120))
        defer { watchdog.cancel() }
        async let stdout = offThePool { out.fileHandleForReading.readDataToEndOfFile() }
        let stderr = await offThePool { err.fileHandleForReading.readDataToEndOfFile() }
        let printed = await stdout
        await waitForExit(process)
        return Output(status: process.terminationStatus, stdout: String(decoding: printed, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self))
    }

    @Test func operatorsVerbsWorkOnAPostgreSQLURL() async throws {
        try await TestServer.withDatabase { database in
            // A password in the URL (trust authentication ignores it): it must never be printed.
            let url = database.url.replacingOccurrences(of: "://troupe@", with: "://troupe:hunter2@")
            let run = try await troupe(url, "run", "counting", "--param", "count=500", "--param", "interval=0ms", "--durability", "durable", "--id", "run-cli")
            #expect(run.status == 0, "\(run.stderr)")
            #expect((run.stdout + run.stderr).contains("completed"), "\(run.stdout) \(run.stderr)")
            let ps = try await troupe(url, "ps")
            #expect(ps.stdout.contains("run-cli") && ps.stdout.contains("completed"), "\(ps.stdout)")
            let last = try await troupe(url, "checkpoints", "run-cli", "counter", "--show", "last")
            let state = try JSONDecoder().decode(CrashLoop.CounterState.self, from: Data(last.stdout.utf8))
            #expect(state.count == 500 && state.sum == 500 * 501 / 2 && state.duplicates == 0 && state.gaps == 0)
            let queued = try await troupe(url, "restart", "run-cli", "counter")
            #expect(queued.status == 0 && queued.stdout.contains("queued"), "\(queued.stdout) \(queued.stderr)")
            let check = try await troupe(url, "db", "check")
            #expect(check.status == 0 && check.stdout.contains("integrity   ok"), "\(check.stdout) \(check.stderr)")
            let unknown = try await troupe(url, "status", "run-nope")
            #expect(unknown.status == 66, "\(unknown.stderr)")
            for output in [run, ps, last, queued, check, unknown] {
                #expect(!(output.stdout + output.stderr).contains("hunter2"), "the password was printed: \(output.stdout) \(output.stderr)")
            }
        }
    }
}
