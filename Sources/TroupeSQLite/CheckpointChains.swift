import Troupe

/// How a SQLite store finds an agent's checkpoints (migration 0011).
///
/// There is no index on `checkpoints`: an index insert and an index delete were a quarter of the writer's time per
/// checkpoint. Instead:
/// - the agent's head (`checkpoint_heads`) records the sequence and the row id of its latest checkpoint;
/// - each checkpoint records the row id of the agent's checkpoint before it (`prev`), so the kept ones form a chain
///   from the head, newest first. A row id only grows with time (a new row takes the largest id plus one), so a
///   chain's ids and sequences fall strictly; the walk checks both, and the agent, at every step, and so ends on a
///   pruned, reused or damaged row instead of wandering;
/// - the run records the sum of its heads' sequences (`runs.head_sum`), written in the transactions that move them.
///
/// A read that decides something checks the head against both: the latest row must be the agent's and carry the
/// head's sequence (a damaged or stale table page fails that), and the heads of the run must add up to its sum (a
/// stale page of heads fails that). On a mismatch it refuses with ``TroupeError/Code/corruptCheckpoint``.
enum CheckpointChains {
    /// A recursive common table expression, `kept(agent, id, prev, seq, txn, depth)`: the kept checkpoints of the
    /// agents whose row ids `agents` selects, newest first along each chain (`depth` 0 is the head's).
    static func kept(of agents: String) -> String {
        """
        WITH RECURSIVE kept(agent, id, prev, seq, txn, depth) AS (
            SELECT h.agent_id, c.id, c.prev, c.seq, c.txn, 0 FROM checkpoint_heads h
            JOIN checkpoints c ON c.id = h.last_id AND c.agent_id = h.agent_id AND c.seq = h.last_seq
            WHERE h.agent_id IN (\(agents))
            UNION ALL
            SELECT k.agent, c.id, c.prev, c.seq, c.txn, k.depth + 1 FROM kept k
            JOIN checkpoints c ON c.id = k.prev AND c.agent_id = k.agent AND c.id < k.id AND c.seq < k.seq
        )
        """
    }

    /// How deep ``joined(depth:of:)`` goes at most (SQLite joins at most 64 tables).
    static let joinedDepth = 16

    /// The newest `depth` checkpoints along the chains of the agents whose row ids `agents` selects, by joins: a row
    /// per agent with a head, `(agent, id at depth 0, …, id at depth - 1, whether the chain goes on)`; NULL where a
    /// chain is shorter.
    static func joined(depth: Int, of agents: String) -> String {
        precondition(depth >= 1 && depth <= joinedDepth)
        let columns = (0..<depth).map { "c\($0).id" }.joined(separator: ", ")
        let joins = (1...depth).map { level in
            "LEFT JOIN checkpoints c\(level) ON c\(level).id = c\(level - 1).prev AND c\(level).agent_id = h.agent_id "
                + "AND c\(level).id < c\(level - 1).id AND c\(level).seq < c\(level - 1).seq"
        }.joined(separator: "\n")
        return """
            SELECT h.agent_id, \(columns), c\(depth).id IS NOT NULL FROM checkpoint_heads h
            JOIN checkpoints c0 ON c0.id = h.last_id AND c0.agent_id = h.agent_id AND c0.seq = h.last_seq
            \(joins)
            WHERE h.agent_id IN (\(agents))
            """
    }

    /// The run's recorded head sum and the sum of its heads now (`?1` the run).
    static let headSumsSQL = """
        SELECT r.head_sum, (SELECT coalesce(sum(h.last_seq), 0) FROM agents a JOIN checkpoint_heads h ON h.agent_id = a.id
        WHERE a.run_id = r.id) FROM runs r WHERE r.id = ?1
        """

    /// Checks that `run`'s heads add up to the sum its commits recorded.
    ///
    /// - Throws: ``TroupeError/Code/corruptCheckpoint`` when they do not.
    static func checkHeadSum(of run: RunID, connection: Connection, path: String) throws {
        let sums = try connection.statement(headSumsSQL)
        defer { sums.reset() }
        try sums.bind(run.rawValue, at: 1)
        guard try sums.step() else { return }
        let (recorded, found) = (sums.int64(0), sums.int64(1))
        guard recorded == found else { throw damagedHeads(run, found: found, recorded: recorded, path: path) }
    }

    /// The newest sequence any row of agent `row` carries, found by reading the whole table: only to say what a
    /// damaged agent's latest checkpoint reads as, on the way to an error.
    static func newestSequence(ofAgentRow row: Int64, connection: Connection) -> Int64 {
        (try? connection.scalar("SELECT coalesce(max(seq), 0) FROM checkpoints WHERE agent_id = ?", .integer(row))) ?? 0
    }

    static func damagedHeads(_ run: RunID, found: Int64, recorded: Int64, path: String) -> TroupeError {
        TroupeError(
            .corruptCheckpoint,
            "the checkpoint heads of run \(run) in '\(path)' are damaged: the sequences they record add up to \(found), "
                + "but the run's commits recorded \(recorded). Nothing was loaded from them; run `troupe db check` on "
                + "the database, and restore it from a backup if the check fails."
        )
    }
}
