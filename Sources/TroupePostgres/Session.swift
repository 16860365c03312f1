import FoundationEssentials
import Glibc
import Synchronization
import Troupe

/// The writer connection and what this process knows: the runs it leases, and every claimed agent's row and epoch.
///
/// `@unchecked Sendable` because the compiler cannot see thread confinement: every member is used only by the
/// ``Writer``'s thread (jobs run there and nowhere else), except ``cancelStatement()``, which reaches the current
/// connection through a lock and calls only its thread-safe ``PGConnection/cancel()``.
final class Session: @unchecked Sendable {
    struct AgentRow {
        var row: Int64
        var epoch: UInt64
        /// Whether the agent may have recorded steps (its claim found some, or it recorded one since): only then
        /// does a commit delete the steps of the units it finishes.
        var mayHaveSteps = false
    }

    private(set) var connection: PGConnection {
        didSet { cancelTarget.withLock { $0 = connection } }
    }
    /// The current connection, for ``cancelStatement()`` from other threads.
    private let cancelTarget: Mutex<PGConnection>
    let url: String
    let location: String
    let retention: Int
    let syncEveryCommit: Bool
    /// Milliseconds of silence after which another host's lease counts as expired.
    let leaseTimeout: Int64
    private(set) var leases: [RunID: Int64] = [:]
    /// Runs whose lease another process took while this one held it: their writes fail as `leaseHeld`.
    private var lost: Set<RunID> = []
    /// Told when a lease is found taken over (on the writer thread; must not block). Set before the thread starts.
    var onLeaseLost: (@Sendable (RunID, TroupeError) -> Void)?
    private(set) var agents: [AgentID: AgentRow] = [:]
    /// Undo steps for the in-memory state, run if the transaction rolls back.
    private var undo: [() -> Void] = []
    private var inTransaction = false
    /// Each run's number for the current transaction (`runs.txn`), taken with its lease check.
    private var transactionNumbers: [RunID: Int64] = [:]
    let pid = Int64(getpid())
    let host = OwnerLiveness.localHost

    init(connection: PGConnection, url: String, retention: Int, syncEveryCommit: Bool, heartbeat: Duration) {
        self.connection = connection
        self.cancelTarget = Mutex(connection)
        self.url = url
        self.location = connection.location
        self.retention = retention
        self.syncEveryCommit = syncEveryCommit
        let milliseconds = heartbeat.components.seconds * 1000 + heartbeat.components.attoseconds / 1_000_000_000_000_000
        self.leaseTimeout = max(1, milliseconds) * 3
    }

    // MARK: Connection and transactions

    /// Opens a new session if the server closed this one (a restart, a terminated backend). The old session's
    /// transaction is gone with it; leases are rows and survive.
    func reconnectIfNeeded() throws {
        guard !connection.isHealthy else { return }
        connection = try PostgresStore.connect(url)
    }

    /// Asks the server to stop the statement running on the writer connection (from any thread).
    func cancelStatement() {
        cancelTarget.withLock { $0.cancel() }
    }

    /// Runs `body` in one transaction. Without `sync`, the commit does not wait for the server's WAL flush
    /// (`synchronous_commit = off`): it survives this process, not a crash of the database server's host.
    func transaction(sync: Bool, _ body: () throws -> Void) throws {
        undo.removeAll(keepingCapacity: true)
        transactionNumbers.removeAll(keepingCapacity: true)
        inTransaction = true
        defer {
            inTransaction = false
            transactionNumbers.removeAll(keepingCapacity: true)
        }
        do {
            try connection.execute(sync || syncEveryCommit ? "BEGIN" : "BEGIN; SET LOCAL synchronous_commit TO off")
            try body()
            try connection.execute("COMMIT")
        } catch {
            connection.rollback()
            for step in undo.reversed() { step() }
            undo.removeAll()
            throw error
        }
    }

    /// Turns the server's errors into errors that say what to do.
    func translate(_ error: any Error) -> any Error {
        guard let error = error as? PostgresError else { return error }
        return Self.translate(error, location: location)
    }

    static func translate(_ error: PostgresError, location: String) -> any Error {
        if error.isCancelled { return CancellationError() }
        if error.isConnectionLost {
            return TroupeError(
                .storage,
                "the PostgreSQL server at \(location) cannot be reached (\(error.message)). Nothing of this step was "
                    + "written; earlier commits are intact. Check the server, then retry or resume the run.",
                underlying: error
            )
        }
        if error.sqlState == "53100" || error.sqlState == "53200" {
            return TroupeError(
                .storage,
                "the PostgreSQL server at \(location) is out of disk or memory (\(error.message)). Nothing of this step "
                    + "was written; earlier commits are intact. Free space and resume the run.",
                underlying: error
            )
        }
        return TroupeError(.storage, "writing to \(location) failed: \(error.description)", underlying: error)
    }

    // MARK: Leases

    /// `run`'s number for the current write transaction, advanced once per transaction (with the lease check,
    /// while the run is leased). Checkpoints and messages record it, so that a fork can cut the run after it.
    func currentTransaction(_ run: RunID) throws -> Int64 {
        if let number = transactionNumbers[run], inTransaction { return number }
        if leases[run] != nil {
            try checkLease(run)
            if let number = transactionNumbers[run] { return number }
        }
        guard let number = try connection.scalar("UPDATE runs SET txn = txn + 1 WHERE id = $1 RETURNING txn", .text(run.rawValue)) else {
            throw TroupeError.unknownRun(run, in: location)
        }
        if inTransaction { transactionNumbers[run] = number }
        return number
    }

    /// Confirms, once per transaction, that this process still holds `run`'s lease, and renews its heartbeat.
    ///
    /// The check is an `UPDATE` of the run's row where the lease token is ours: it holds the row's lock until the
    /// transaction ends, so a takeover (which updates the same row) either committed before — the check finds
    /// another token, and nothing of the batch is written for the run — or waits until this batch is committed.
    /// Fencing never depends on this process's idea of time.
    func checkLease(_ run: RunID) throws {
        if inTransaction, transactionNumbers[run] != nil { return }
        guard let token = leases[run] else {
            if lost.contains(run) { throw Self.takenOver(run) }
            throw TroupeError(.notRunning, "run \(run) is not attached to \(location) in this process; start or resume it first.")
        }
        let number = try connection.scalar(
            "UPDATE runs SET heartbeat_at = now(), txn = txn + 1 WHERE id = $1 AND lease_token = $2 RETURNING txn",
            .text(run.rawValue), .int(token)
        )
        guard let number else {
            leases[run] = nil
            lost.insert(run)
            onLeaseLost?(run, Self.takenOver(run))
            throw Self.takenOver(run)
        }
        if inTransaction { transactionNumbers[run] = number }
    }

    private static func takenOver(_ run: RunID) -> TroupeError {
        TroupeError(
            .leaseHeld,
            "run \(run) was taken over by another process; this process stops writing to it. Check `troupe ps`."
        )
    }

    /// Renews the heartbeat of every leased run (called when the writer is idle).
    func heartbeat() {
        guard !leases.isEmpty else { return }
        try? reconnectIfNeeded()
        try? transaction(sync: false) {
            for run in leases.keys { try? checkLease(run) }
        }
    }

    func attach(_ record: RunRecord) throws -> Bool {
        let found = try connection.query(
            """
            SELECT owner_pid, owner_host, (extract(epoch FROM now() - heartbeat_at) * 1000)::int8, lease_token
            FROM runs WHERE id = $1 FOR UPDATE
            """,
            .text(record.id.rawValue)
        )
        var token: Int64 = 1
        let existing = found.count > 0
        if existing {
            // A run whose owner lives is that owner's; one that ended has none; one whose owner died is taken over.
            if !found.isNull(0, 0) {
                let owner = found.int64(0, 0)
                let ownerHost = found.text(0, 1)
                let silence = found.isNull(0, 2) ? Int64.max / 4 : found.int64(0, 2)
                let ours = owner == pid && ownerHost == host
                if ours || OwnerLiveness.isAlive(pid: owner, host: ownerHost, silence: silence, timeout: leaseTimeout) {
                    throw OwnerLiveness.heldElsewhere(record.id, pid: owner, host: ownerHost, silence: silence, timeout: leaseTimeout)
                }
            }
            token = found.int64(0, 3) + 1
            try connection.query(
                """
                UPDATE runs SET owner_pid = $1, owner_host = $2, lease_token = $3, heartbeat_at = now(),
                status = CASE status WHEN 'paused' THEN 'paused' ELSE 'running' END, updated_at = now(),
                ended_at = NULL, error = NULL, durability = coalesce($4, durability) WHERE id = $5
                """,
                .int(pid), .text(host), .int(token), .text(record.durability?.description), .text(record.id.rawValue)
            )
            try setAsideOrphans(record)
        } else {
            let inserted = try connection.query(
                """
                INSERT INTO runs (id, blueprint, status, parameters, durability, created_at, updated_at, owner_pid,
                owner_host, lease_token, heartbeat_at) VALUES ($1, $2, 'running', $3, $4, now(), now(), $5, $6, 1, now())
                ON CONFLICT (id) DO NOTHING
                """,
                .text(record.id.rawValue), .text(record.blueprint), .text(Self.json(record.parameters)),
                .text(record.durability?.description), .int(pid), .text(host)
            )
            // Another process created it between our look and our insert: it drives the run now.
            guard inserted.affected == 1 else { return try attach(record) }
        }
        let previous = leases[record.id]
        leases[record.id] = token
        let wasLost = lost.remove(record.id) != nil
        let forgotten = agents.filter { $0.key.run == record.id }
        for key in forgotten.keys { agents[key] = nil }
        transactionNumbers[record.id] = nil
        undo.append { [unowned self] in
            leases[record.id] = previous
            if wasLost { lost.insert(record.id) }
            for (key, value) in forgotten { agents[key] = value }
        }
        return existing
    }

    /// Durable messages to names the blueprint no longer has become dead letters.
    private func setAsideOrphans(_ record: RunRecord) throws {
        let orphans = try connection.query(
            """
            SELECT DISTINCT recipient FROM messages WHERE run_id = $1 AND consumed_txn IS NULL
            AND NOT (recipient = ANY($2::text[]))
            """,
            .text(record.id.rawValue), .text(Self.array(record.agents))
        )
        for row in 0..<orphans.count {
            guard let name = orphans.text(row, 0) else { continue }
            try connection.query(
                """
                INSERT INTO dead_letters (run_id, agent, payload, error, failures, created_at)
                SELECT run_id, recipient, payload, $1, 0, now() FROM messages
                WHERE run_id = $2 AND recipient = $3 AND consumed_txn IS NULL ORDER BY id
                """,
                .text("blueprint '\(record.blueprint)' has no agent '\(name)' any more; the message was set aside when run \(record.id) resumed."),
                .text(record.id.rawValue), .text(name)
            )
            try connection.query(
                "UPDATE messages SET consumed_txn = $1 WHERE run_id = $2 AND recipient = $3 AND consumed_txn IS NULL",
                .int(try currentTransaction(record.id)), .text(record.id.rawValue), .text(name)
            )
        }
    }

    func detach(_ run: RunID, outcome: RunOutcome, error: String?) throws {
        guard let token = leases[run] else {
            lost.remove(run)
            return
        }
        try connection.query(
            """
            UPDATE runs SET status = $1, error = $2, ended_at = now(), updated_at = now(), owner_pid = NULL,
            heartbeat_at = NULL WHERE id = $3 AND lease_token = $4
            """,
            .text(outcome.rawValue), .text(error), .text(run.rawValue), .int(token)
        )
        leases[run] = nil
        undo.append { [unowned self] in leases[run] = token }
    }

    // MARK: Agents

    /// Claims agents in the current transaction: per run and kind of agent, one upsert of their rows (new epochs),
    /// then one statement each to read the latest checkpoints, adopt the durable messages accepted under an older
    /// lease, and read recorded steps (the first and last only for rows that existed before the claim).
    func claim(_ requests: [ClaimRequest]) throws -> [Claim] {
        var claims: [Claim?] = Array(repeating: nil, count: requests.count)
        var byRun: [RunID: [Int]] = [:]
        for (index, request) in requests.enumerated() { byRun[request.agent.run, default: []].append(index) }
        for (run, indices) in byRun {
            try checkLease(run)
            for (index, claim) in try claim(run, indices.map { requests[$0] }) { claims[indices[index]] = claim }
        }
        return claims.map { $0! }
    }

    private struct ClaimKind: Hashable {
        let type: String
        let durability: Durability
    }

    private func claim(_ run: RunID, _ requests: [ClaimRequest]) throws -> [(Int, Claim)] {
        struct Claimed {
            var row: Int64
            var epoch: UInt64
            var lastSequence: Int64
            var existed: Bool
            var latest: Checkpoint?
            var pending: [StoredMessage] = []
            var steps: [String: [UInt8]] = [:]
        }
        let position = Dictionary(requests.enumerated().map { ($1.agent.name, $0) }, uniquingKeysWith: { $1 })
        var claimed: [Claimed?] = Array(repeating: nil, count: requests.count)
        var byRow: [Int64: Int] = [:]
        var kinds: [ClaimKind: [String]] = [:]
        for request in requests {
            kinds[ClaimKind(type: request.type, durability: request.durability), default: []].append(request.agent.name)
        }
        for (kind, names) in kinds {
            // `xmax = 0` on a returned row: the claim inserted it (a new agent, with no history to read).
            let rows = try connection.query(
                """
                INSERT INTO agents (run_id, name, type, durability, status, epoch, updated_at)
                SELECT $1, n, $2, $3, 'running', 1, now() FROM unnest($4::text[]) AS n
                ON CONFLICT (run_id, name) DO UPDATE SET epoch = agents.epoch + 1, type = excluded.type,
                durability = excluded.durability, status = 'running', updated_at = excluded.updated_at
                RETURNING id, name, epoch, last_seq, xmax <> 0
                """,
                .text(run.rawValue), .text(kind.type), .text(kind.durability.description), .text(Self.array(names))
            )
            for row in 0..<rows.count {
                guard let name = rows.text(row, 1), let index = position[name] else { continue }
                claimed[index] = Claimed(
                    row: rows.int64(row, 0), epoch: UInt64(rows.int64(row, 2)), lastSequence: rows.int64(row, 3),
                    existed: rows.int64(row, 4) != 0
                )
                byRow[rows.int64(row, 0)] = index
            }
        }
        guard byRow.count == requests.count else {
            throw PostgresError(sqlState: "XX000", message: "a claim returned \(byRow.count) rows for \(requests.count) agents")
        }
        var previous: [(AgentID, AgentRow?)] = []
        previous.reserveCapacity(requests.count)
        for (index, request) in requests.enumerated() {
            let claim = claimed[index]!
            previous.append((request.agent, agents.updateValue(AgentRow(row: claim.row, epoch: claim.epoch), forKey: request.agent)))
        }
        undo.append { [unowned self] in for (agent, row) in previous { agents[agent] = row } }
        let existing = claimed.compactMap { $0!.existed ? $0!.row : nil }
        let ids = existing.isEmpty ? nil : Self.array(existing)

        if let ids {
            let latest = try connection.query(
                """
                SELECT a.id, c.seq, c.epoch, c.state_version, c.state FROM unnest($1::int8[]) AS a(id)
                JOIN LATERAL (SELECT seq, epoch, state_version, state FROM checkpoints WHERE agent_id = a.id
                ORDER BY seq DESC LIMIT 1) c ON true
                """,
                .text(ids)
            )
            for row in 0..<latest.count {
                guard let index = byRow[latest.int64(row, 0)] else { continue }
                let agent = requests[index].agent
                guard latest.int64(row, 1) == claimed[index]!.lastSequence else {
                    throw TroupeError.damagedCheckpoints(agent, found: latest.int64(row, 1), recorded: claimed[index]!.lastSequence, path: location)
                }
                claimed[index]!.latest = Checkpoint(
                    agent: agent, epoch: UInt64(latest.int64(row, 2)), sequence: UInt64(latest.int64(row, 1)),
                    stateVersion: latest.int(row, 3), state: latest.blob(row, 4)
                )
            }
        }
        for (index, claim) in claimed.enumerated() where claim!.latest == nil && claim!.lastSequence != 0 {
            throw TroupeError.damagedCheckpoints(requests[index].agent, found: 0, recorded: claim!.lastSequence, path: location)
        }
        // Messages accepted under an older lease are adopted by this one and returned, once.
        if let token = leases[run] {
            let adopted = try connection.query(
                """
                UPDATE messages SET lease = $1 WHERE run_id = $2 AND recipient = ANY($3::text[]) AND lease < $1
                AND consumed_txn IS NULL RETURNING id, recipient, sender, payload
                """,
                .int(token), .text(run.rawValue), .text(Self.array(requests.map(\.agent.name)))
            )
            for row in 0..<adopted.count {
                guard let recipient = adopted.text(row, 1), let index = position[recipient] else { continue }
                claimed[index]!.pending.append(
                    StoredMessage(id: adopted.int64(row, 0), recipient: recipient, sender: adopted.text(row, 2), payload: adopted.blob(row, 3))
                )
            }
        }
        if let ids {
            let recorded = try connection.query("SELECT agent_id, key, result FROM steps WHERE agent_id = ANY($1::int8[])", .text(ids))
            for row in 0..<recorded.count {
                guard let index = byRow[recorded.int64(row, 0)] else { continue }
                if claimed[index]!.steps.isEmpty { agents[requests[index].agent]?.mayHaveSteps = true }
                claimed[index]!.steps[recorded.text(row, 1) ?? ""] = recorded.blob(row, 2)
            }
        }
        return claimed.enumerated().map { index, claim in
            let claim = claim!
            return (index, Claim(epoch: claim.epoch, latest: claim.latest, pending: claim.pending.sorted { $0.id < $1.id }, steps: claim.steps))
        }
    }

    func commit(_ commit: Commit) throws -> [Int64] {
        try checkLease(commit.run)
        if let agent = commit.agent {
            guard let row = agents[agent], row.epoch == commit.epoch else {
                throw TroupeError.fenced(agent, epoch: commit.epoch, current: agents[agent]?.epoch ?? 0)
            }
            if let checkpoint = commit.checkpoint {
                let sequence = Int64(checkpoint.sequence)
                // The agent's row is updated only where the epoch is this incarnation's: fenced in the database too.
                let updated = try connection.query(
                    "UPDATE agents SET last_seq = $1 WHERE id = $2 AND epoch = $3",
                    .int(sequence), .int(row.row), .int(Int64(commit.epoch))
                )
                guard updated.affected == 1 else {
                    throw TroupeError.fenced(agent, epoch: commit.epoch, current: 0)
                }
                try connection.query(
                    """
                    INSERT INTO checkpoints (agent_id, seq, epoch, state_version, created_at, state, txn)
                    VALUES ($1, $2, $3, $4, now(), $5, $6)
                    """,
                    .int(row.row), .int(sequence), .int(Int64(commit.epoch)), .int(Int64(checkpoint.stateVersion)),
                    .bytes(checkpoint.state), .int(try currentTransaction(commit.run))
                )
                // Retention, amortised: every `retention` checkpoints, drop those older than the last `retention`,
                // and the consumed messages no fork can need any more (consumed before the oldest kept checkpoint).
                if sequence % Int64(retention) == 0, sequence > Int64(retention) {
                    try connection.query(
                        "DELETE FROM checkpoints WHERE agent_id = $1 AND seq <= $2", .int(row.row), .int(sequence - Int64(retention))
                    )
                    try connection.query(
                        """
                        DELETE FROM messages WHERE run_id = $1 AND recipient = $2 AND consumed_txn IS NOT NULL
                        AND consumed_txn < (SELECT txn FROM checkpoints WHERE agent_id = $3 ORDER BY seq LIMIT 1)
                        """,
                        .text(agent.run.rawValue), .text(agent.name), .int(row.row)
                    )
                }
            }
            if row.mayHaveSteps {
                for scope in commit.finishedSteps { try forgetSteps(of: row.row, scope: scope) }
            }
            if !commit.consumed.isEmpty {
                // Marked, not deleted: a fork at an earlier cut finds them in flight.
                try connection.query(
                    "UPDATE messages SET consumed_txn = $1 WHERE id = ANY($2::int8[]) AND consumed_txn IS NULL",
                    .int(try currentTransaction(commit.run)), .text(Self.array(commit.consumed))
                )
            }
        }
        guard !commit.sent.isEmpty else { return [] }
        let token = leases[commit.run] ?? 0
        let number = try currentTransaction(commit.run)
        var ids: [Int64] = []
        ids.reserveCapacity(commit.sent.count)
        for message in commit.sent {
            let id = try connection.scalar(
                """
                INSERT INTO messages (run_id, recipient, sender, created_at, payload, lease, sent_txn)
                VALUES ($1, $2, $3, now(), $4, $5, $6) RETURNING id
                """,
                .text(commit.run.rawValue), .text(message.recipient), .text(commit.agent?.name), .bytes(message.payload),
                .int(token), .int(number)
            )
            ids.append(id ?? 0)
        }
        return ids
    }

    func recordStep(_ agent: AgentID, epoch: UInt64, key: String, result: [UInt8]) throws {
        try checkLease(agent.run)
        guard let row = agents[agent], row.epoch == epoch else {
            throw TroupeError.fenced(agent, epoch: epoch, current: agents[agent]?.epoch ?? 0)
        }
        if !row.mayHaveSteps { agents[agent]?.mayHaveSteps = true }
        try connection.query(
            """
            INSERT INTO steps (agent_id, key, result, created_at) VALUES ($1, $2, $3, now())
            ON CONFLICT (agent_id, key) DO UPDATE SET result = excluded.result, created_at = excluded.created_at
            """,
            .int(row.row), .text(key), .bytes(result)
        )
    }

    /// Deletes agent `row`'s steps filed under `scope`: keys "SCOPE/NAME#N" lie in ["SCOPE/", "SCOPE0") byte-wise.
    private func forgetSteps(of row: Int64, scope: String) throws {
        try connection.query(
            "DELETE FROM steps WHERE agent_id = $1 AND key >= $2 AND key < $3", .int(row), .text(scope + "/"), .text(scope + "0")
        )
    }

    func deadLetter(_ letter: DeadLetter) throws {
        try checkLease(letter.agent.run)
        try connection.query(
            "INSERT INTO dead_letters (run_id, agent, payload, error, failures, created_at) VALUES ($1, $2, $3, $4, $5, now())",
            .text(letter.agent.run.rawValue), .text(letter.agent.name), .bytes(letter.message), .text(letter.error),
            .int(Int64(letter.failures))
        )
        guard let id = letter.messageID else { return }
        try connection.query(
            "UPDATE messages SET consumed_txn = $1 WHERE id = $2 AND consumed_txn IS NULL",
            .int(try currentTransaction(letter.agent.run)), .int(id)
        )
        // The message's unit of work ends here: its recorded steps must never be replayed to anything else.
        try connection.query(
            """
            DELETE FROM steps WHERE agent_id = (SELECT id FROM agents WHERE run_id = $1 AND name = $2)
            AND key >= $3 AND key < $4
            """,
            .text(letter.agent.run.rawValue), .text(letter.agent.name), .text("m\(id)/"), .text("m\(id)0")
        )
    }

    /// Moves dead letters back into their agents' durable inboxes, under lease 0 (accepted by no owner), so the
    /// agent's next claim adopts them. Returns the agents they went to.
    func requeue(_ run: RunID, ids: [Int64]?) throws -> [String] {
        let moved = try connection.query(
            """
            WITH moved AS (
                DELETE FROM dead_letters WHERE run_id = $1 AND ($2::int8[] IS NULL OR id = ANY($2::int8[]))
                RETURNING id, agent, payload
            )
            INSERT INTO messages (run_id, recipient, sender, created_at, payload, lease, sent_txn)
            SELECT $1, agent, NULL, now(), payload, 0, $3 FROM moved ORDER BY id RETURNING recipient
            """,
            .text(run.rawValue), .text(ids.map(Self.array)), .int(try currentTransaction(run))
        )
        return (0..<moved.count).map { moved.text($0, 0) ?? "" }
    }

    // MARK: Events

    /// Appends events to the log (inside the caller's transaction), and the agent rows' status they imply.
    func record(_ events: [Event]) throws {
        for event in events where leases[event.run] != nil {
            try connection.query(
                """
                INSERT INTO events (run_id, agent, incarnation, kind, detail, created_at)
                VALUES ($1, $2, $3, $4, $5, to_timestamp($6::float8))
                """,
                .text(event.run.rawValue), .text(event.name), .int(Int64(event.incarnation)), .text(event.kind.name),
                .text(event.kind.detail), .double(event.time.timeIntervalSince1970)
            )
            // A persisting agent's claim, which precedes its start, already set its row running.
            let claimed = if case .started = event.kind { agents[AgentID(run: event.run, name: event.name)] != nil } else { false }
            if let status = event.kind.impliedStatus, !claimed {
                try connection.query(
                    """
                    UPDATE agents SET status = $1, last_error = coalesce($2, last_error), updated_at = now()
                    WHERE run_id = $3 AND name = $4
                    """,
                    .text(status.rawValue), .text(event.kind.error), .text(event.run.rawValue), .text(event.name)
                )
            }
            if case .restarting(_, let restarts) = event.kind {
                try connection.query(
                    "UPDATE agents SET restarts = $1, updated_at = now() WHERE run_id = $2 AND name = $3",
                    .int(Int64(restarts)), .text(event.run.rawValue), .text(event.name)
                )
            }
        }
    }

    // MARK: Encoding

    /// A PostgreSQL array literal of strings (`{"a","b\"c"}`), for one parameter of type `text[]`.
    static func array(_ values: [String]) -> String {
        var out = "{"
        for (index, value) in values.enumerated() {
            if index > 0 { out += "," }
            out += "\""
            for character in value.unicodeScalars {
                if character == "\"" || character == "\\" { out += "\\" }
                out.unicodeScalars.append(character)
            }
            out += "\""
        }
        return out + "}"
    }

    /// A PostgreSQL array literal of integers, for one parameter of type `int8[]`.
    static func array(_ values: [Int64]) -> String {
        "{" + values.map(String.init).joined(separator: ",") + "}"
    }

    static func json(_ parameters: [String: String]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return (try? encoder.encode(parameters)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}
