import FoundationEssentials
public import Troupe

// The store shared by `troupe worker` processes: registration, eviction of dead workers, claims, submissions, drain.

extension PostgresStore: WorkerPool {
    public func registerWorker(_ registration: WorkerRegistration) async throws -> Int64 {
        try await writer.perform(sync: true) { session in try session.register(registration) }
    }

    public func evictDeadWorkers() async throws -> Int {
        try await writer.performAlone { session in try session.evictDeadWorkers() }
    }

    public func claimRuns(limit: Int) async throws -> [RunRecord] {
        try await writer.perform(sync: true) { session in try session.claimRuns(limit: limit) }
    }

    public func submit(_ run: RunRecord) async throws {
        let location = self.location
        try await writer.perform(sync: true) { session in
            let inserted = try session.connection.query(
                """
                INSERT INTO runs (id, blueprint, status, parameters, durability, created_at, updated_at, lease_token)
                VALUES ($1, $2, 'pending', $3, $4, now(), now(), 0) ON CONFLICT (id) DO NOTHING
                """,
                .text(run.id.rawValue), .text(run.blueprint), .text(Session.json(run.parameters)), .text(run.durability?.description)
            )
            guard inserted.affected == 1 else {
                throw TroupeError(.duplicateName, "\(location) already has a run '\(run.id)'; submit it under another id.")
            }
        }
    }

    public func release(_ run: RunID) async throws {
        try await writer.perform(sync: true) { session in
            _ = try session.connection.query(
                "UPDATE runs SET status = 'pending', updated_at = now() WHERE id = $1 AND status = 'stopped' AND owner_worker IS NULL",
                .text(run.rawValue)
            )
        }
    }

    public func workers() async throws -> [WorkerSummary] {
        let alive = workerAlive
        return try await read { connection in
            let rows = try connection.query(
                """
                SELECT w.id, w.host, w.pid, w.build, array_to_string(w.tags, ','), w.capacity,
                (SELECT count(*) FROM runs r WHERE r.owner_worker = w.id), w.started_at, w.heartbeat_at,
                (extract(epoch FROM now() - w.heartbeat_at) * 1000)::int8, w.draining, \(alive)
                FROM workers w ORDER BY w.id
                """
            )
            return (0..<rows.count).map { row in
                let tags = rows.text(row, 4) ?? ""
                return WorkerSummary(
                    id: rows.int64(row, 0), host: rows.text(row, 1) ?? "", pid: rows.int64(row, 2), build: rows.text(row, 3) ?? "",
                    tags: tags.isEmpty ? [] : tags.split(separator: ",").map(String.init), capacity: rows.int(row, 5),
                    runs: rows.int(row, 6), startedAt: rows.date(row, 7) ?? .distantPast, heartbeatAt: rows.date(row, 8) ?? .distantPast,
                    heartbeatAge: Double(rows.int64(row, 9)) / 1000, draining: rows.int64(row, 10) != 0, alive: rows.int64(row, 11) != 0
                )
            }
        }
    }

    public func drain(worker: Int64) async throws {
        let location = self.location
        try await writer.perform(sync: true) { session in
            let updated = try session.connection.query("UPDATE workers SET draining = true WHERE id = $1", .int(worker))
            guard updated.affected == 1 else {
                throw TroupeError(.unknownChild, "\(location) has no worker \(worker). `troupe workers` lists them.")
            }
        }
    }

    public var isDraining: Bool { worker.isDraining }

    public func retire() async throws {
        try await writer.perform(sync: true) { session in try session.retire() }
    }
}
