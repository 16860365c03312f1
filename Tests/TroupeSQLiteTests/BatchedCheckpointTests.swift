import Foundation
import Testing
import Troupe
import TroupeTestSupport
@testable import TroupeSQLite

/// The writer's session holds a transaction's checkpoints until the batch ends and writes them in multi-row
/// statements (``WriterSession/flushCheckpoints()``). These tests drive one session directly, so that several
/// commits, other work and a rollback land in one transaction exactly as a batch would put them.
@Suite(.timeLimit(.minutes(3)))
struct BatchedCheckpointTests {
    let run: RunID = "run-b"

    /// A session on a new database at `path`, with run `run-b` attached and its agents claimed.
    private func session(_ path: String, retention: Int, agents: [String]) throws -> (WriterSession, [String: UInt64]) {
        let connection = try Connection(path: path)
        _ = try connection.texts("PRAGMA journal_mode = WAL")
        try Migrator(path: path).migrate(connection)
        let session = WriterSession(connection: connection, retention: retention, synchronousFull: false, heartbeat: .seconds(5))
        var epochs: [String: UInt64] = [:]
        try session.transaction(sync: false) {
            _ = try session.attach(RunRecord(id: run, blueprint: "b", agents: agents))
            for name in agents {
                epochs[name] = try session.claim(AgentID(run: run, name: name), type: "A", durability: .durable).epoch
            }
        }
        return (session, epochs)
    }

    private func commit(
        _ session: WriterSession,
        _ name: String,
        _ sequence: UInt64,
        epoch: UInt64,
        consumed: [Int64] = [],
        sending: [SentMessage] = []
    ) throws -> [Int64] {
        let agent = AgentID(run: run, name: name)
        let state = Checkpoint(agent: agent, epoch: epoch, sequence: sequence, stateVersion: 1, state: Array("\(name)\(sequence)".utf8))
        return try session.commit(Commit(run: run, agent: agent, epoch: epoch, checkpoint: state, consumed: consumed, sent: sending))
    }

    /// What a store opened on `path` finds: each agent's kept checkpoints (sequence and state) and the health check.
    private func kept(_ path: String, _ names: [String]) async throws -> (chains: [String: [String]], problems: [String]) {
        try await withStore(path) { store in
            var chains: [String: [String]] = [:]
            for name in names {
                chains[name] = try await store.checkpoints(of: AgentID(run: run, name: name)).map {
                    "\($0.sequence):\(String(decoding: $0.state, as: UTF8.self))"
                }
            }
            return (chains, try await store.check().problems.map { "\($0)" })
        }
    }

    @Test func manyCommitsInOneTransactionKeepEveryChainExact() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file()
        let names = (0..<40).map { "a\($0)" }
        let (session, epochs) = try session(path, retention: 2, agents: names)
        // One transaction: every agent commits once, then a0 four times more (retention drops rows this same
        // transaction inserted), 40 + 4 rows: more than one statement's worth.
        try session.transaction(sync: false) {
            for name in names { _ = try commit(session, name, 1, epoch: epochs[name]!) }
            for sequence in UInt64(2)...5 { _ = try commit(session, "a0", sequence, epoch: epochs["a0"]!) }
        }
        // Nothing left over: 39 agents with one checkpoint, a0 with two.
        #expect(try session.connection.scalar("SELECT count(*) FROM checkpoints") == 41)
        try session.transaction(sync: false) {
            _ = try commit(session, "a1", 2, epoch: epochs["a1"]!)
            _ = try commit(session, "a1", 3, epoch: epochs["a1"]!)
            _ = try commit(session, "a0", 6, epoch: epochs["a0"]!)
        }
        session.close()
        let found = try await kept(path, names)
        #expect(found.chains["a0"] == ["5:a05", "6:a06"])
        #expect(found.chains["a1"] == ["2:a12", "3:a13"])
        #expect(found.chains["a39"] == ["1:a391"])
        #expect(found.problems.isEmpty)
    }

    /// Work that is not a commit runs after the pending checkpoints are written (``WriterSession/settleCheckpoints()``),
    /// and a checkpoint it inserts does not take the row id of the next commit's.
    @Test func workBetweenCommitsSeesTheirCheckpointsAndKeepsItsOwnRowIDs() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file()
        let (session, epochs) = try session(path, retention: 3, agents: ["a", "b"])
        try session.transaction(sync: false) {
            _ = try commit(session, "a", 1, epoch: epochs["a"]!)
            _ = try commit(session, "a", 2, epoch: epochs["a"]!)
            try session.settleCheckpoints()
            #expect(try session.connection.scalar("SELECT count(*) FROM checkpoints") == 2, "the pending checkpoints were not written")
            // Another job's own checkpoint row (as a fork's copy would be), at the next row id.
            try session.connection.execute(
                "INSERT INTO checkpoints (agent_id, seq, epoch, state_version, created_at, state, txn) "
                    + "SELECT id, 7, 1, 1, 0, x'00', 0 FROM agents WHERE name = 'b'"
            )
            let foreign = session.connection.lastInsertRowID
            _ = try commit(session, "a", 3, epoch: epochs["a"]!)
            try session.settleCheckpoints()
            try session.connection.execute("DELETE FROM checkpoints WHERE id = \(foreign)")
        }
        session.close()
        let found = try await kept(path, ["a"])
        #expect(found.chains["a"] == ["1:a1", "2:a2", "3:a3"])
        #expect(found.problems.isEmpty)
    }

    @Test func aRolledBackTransactionLeavesNoPendingCheckpointBehind() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file()
        let (session, epochs) = try session(path, retention: 2, agents: ["a"])
        try session.transaction(sync: false) {
            _ = try commit(session, "a", 1, epoch: epochs["a"]!)
            _ = try commit(session, "a", 2, epoch: epochs["a"]!)
        }
        struct Abort: Error {}
        #expect(throws: Abort.self) {
            try session.transaction(sync: false) {
                _ = try commit(session, "a", 3, epoch: epochs["a"]!)
                _ = try commit(session, "a", 4, epoch: epochs["a"]!)
                throw Abort()
            }
        }
        try session.transaction(sync: false) { _ = try commit(session, "a", 3, epoch: epochs["a"]!) }
        session.close()
        let found = try await kept(path, ["a"])
        #expect(found.chains["a"] == ["2:a2", "3:a3"])
        #expect(found.problems.isEmpty)
    }

    /// Messages an agent consumed before its oldest kept checkpoint are deleted; when that checkpoint is one the
    /// transaction has not written yet, its transaction is the current one.
    @Test func consumedMessagesGoOnceTheOldestKeptCheckpointIsStillPending() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file()
        let (session, epochs) = try session(path, retention: 1, agents: ["a", "b"])
        var sent: [Int64] = []
        try session.transaction(sync: false) {
            sent = try commit(session, "b", 1, epoch: epochs["b"]!, sending: [SentMessage(to: "a", payload: [1])])
        }
        try session.transaction(sync: false) { _ = try commit(session, "a", 1, epoch: epochs["a"]!, consumed: sent) }
        func messages() throws -> Int64? { try session.connection.scalar("SELECT count(*) FROM messages") }
        #expect(try messages() == 1, "a message consumed at the oldest kept checkpoint was deleted")
        try session.transaction(sync: false) {
            _ = try commit(session, "a", 2, epoch: epochs["a"]!)
        }
        #expect(try messages() == 0, "a message consumed before the oldest kept checkpoint was kept")
        session.close()
        let found = try await kept(path, ["a"])
        #expect(found.chains["a"] == ["2:a2"])
        #expect(found.problems.isEmpty)
    }
}
