// The operator CLI's figures: `troupe cancel` and `troupe restart` against a live run of 1,000 agents, and
// `troupe ps` / `troupe tree` on a large database. They run the release `troupe` binary next to this one.
import Foundation
import Troupe
import TroupeSQLite

/// The `troupe` binary built with this benchmark, if any (`swift build -c release` builds both).
func troupeBinary() -> URL? {
    let url = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("troupe")
    return FileManager.default.isExecutableFile(atPath: url.path) ? url : nil
}

/// Runs `troupe ARGS` to completion; returns the seconds it took.
@discardableResult
func troupe(_ binary: URL, _ arguments: [String]) throws -> Double {
    let process = Process()
    process.executableURL = binary
    process.arguments = arguments
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    let start = ContinuousClock.now
    try process.run()
    process.waitUntilExit()
    return seconds(start.duration(to: .now))
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

func cliListings() async throws {
    guard let binary = troupeBinary() else {
        print("# cli_listings skipped: build the troupe binary too (swift build -c release)")
        return
    }
    let path = temporaryDatabase("listings")
    defer { removeDatabase(path) }
    let store = try await SQLiteStore(path: path)
    // 1,000 runs of 3 agents; 100,000 checkpoints of 200 bytes spread over them.
    _ = try await store.write { connection in
        try connection.execute(
            """
            WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 999)
            INSERT INTO runs (id, blueprint, status, created_at, updated_at, lease_token)
            SELECT printf('run-%05d', i), 'counting', 'stopped', 1700000000000 + i, 1700000000000 + i, 1 FROM n;
            WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 2999)
            INSERT INTO agents (run_id, name, type, durability, status, epoch, updated_at)
            SELECT printf('run-%05d', i / 3), CASE i % 3 WHEN 0 THEN 'source' WHEN 1 THEN 'relay' ELSE 'counter' END,
                'Agent', 'durable', 'stopped', 1, 0 FROM n;
            WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 99999)
            INSERT INTO checkpoints (agent_id, seq, epoch, state_version, created_at, state, prev)
            SELECT 1 + i % 3000, 1 + i / 3000, 1, 1, 1700000000000 + i, randomblob(200), CASE WHEN i < 3000 THEN NULL ELSE i - 2999 END FROM n;
            INSERT INTO checkpoint_heads (agent_id, last_seq, last_id) SELECT agent_id, seq, id FROM checkpoints WHERE id > 97000;
            UPDATE runs SET head_sum = (SELECT sum(h.last_seq) FROM agents a JOIN checkpoint_heads h ON h.agent_id = a.id WHERE a.run_id = runs.id);
            """
        )
    }
    await store.close()
    let ps = median(try (0..<5).map { _ in try troupe(binary, ["ps", "--json", "--database", path]) })
    let tree = median(try (0..<5).map { _ in try troupe(binary, ["tree", "run-00500", "--database", path]) })
    report("cli_ps_1000runs_100kcheckpoints", ps * 1000, "ms")
    report("cli_tree_1000runs_100kcheckpoints", tree * 1000, "ms")
}

/// Starts `troupe run fleet` in a process of its own and returns it, with a store on its database, once every
/// worker has claimed its row (the tree is up).
func startFleet(_ binary: URL, agents: Int, id: String, database path: String) async throws -> (Process, SQLiteStore) {
    let driver = Process()
    driver.executableURL = binary
    driver.arguments = ["run", "fleet", "--param", "workers=\(agents)", "--id", id, "--database", path]
    driver.standardOutput = FileHandle.nullDevice
    driver.standardError = FileHandle.nullDevice
    try driver.run()
    while access(path, F_OK) != 0 { try await Task.sleep(for: .milliseconds(10)) }
    let store = try await SQLiteStore(path: path)
    while try await store.read({ try $0.scalar("SELECT count(*) FROM agents WHERE run_id = ?", .text(id)) ?? 0 }) < agents {
        try await Task.sleep(for: .milliseconds(10))
    }
    return (driver, store)
}

func cliControl(agents: Int) async throws {
    guard let binary = troupeBinary() else {
        print("# cli_control skipped: build the troupe binary too (swift build -c release)")
        return
    }
    let path = temporaryDatabase("control")
    defer { removeDatabase(path) }
    let run = "run-fleet"
    let (driver, store) = try await startFleet(binary, agents: agents, id: run, database: path)
    defer { if driver.isRunning { driver.terminate() } }
    let before = try await store.read { try $0.scalar("SELECT coalesce(max(seq), 0) FROM events") ?? 0 }
    let invoked = ContinuousClock.now
    try troupe(binary, ["restart", run, "worker-500", "--database", path])
    let returned = ContinuousClock.now
    while try await store.read({ connection in
        try connection.scalar(
            "SELECT count(*) FROM events WHERE run_id = 'run-fleet' AND agent = 'worker-500' AND kind = 'started' AND seq > ?",
            .integer(before)
        ) ?? 0
    }) == 0 {
        try await Task.sleep(for: .milliseconds(2))
    }
    let started = ContinuousClock.now
    report("cli_restart_returned_to_started_\(agents)agents", seconds(returned.duration(to: started)) * 1000, "ms")
    report("cli_restart_invoked_to_started_\(agents)agents", seconds(invoked.duration(to: started)) * 1000, "ms")

    let cancelInvoked = ContinuousClock.now
    try troupe(binary, ["cancel", run, "--database", path])
    let cancelled = ContinuousClock.now
    driver.waitUntilExit()
    report("cli_cancel_returned_to_all_stopped_\(agents)agents", seconds(cancelled.duration(to: .now)) * 1000, "ms")
    report("cli_cancel_invoked_to_all_stopped_\(agents)agents", seconds(cancelInvoked.duration(to: .now)) * 1000, "ms")
    await store.close()
}

/// CPU time of process `pid` (user + system), in seconds, from `/proc/PID/stat`.
func cpuSeconds(of pid: Int32) -> Double? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = text.lastIndex(of: ")")
    else { return nil }
    // Fields after the command name: state is field 3; utime and stime are fields 14 and 15.
    let fields = text[text.index(after: close)...].split(separator: " ")
    guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// The CPU an idle fleet's driving process costs: `troupe run fleet` with `agents` workers and nothing to do, as a
/// fraction of one core over 10 seconds once the tree is up.
func idleFleet(agents: Int) async throws {
    guard let binary = troupeBinary() else {
        print("# idle_fleet skipped: build the troupe binary too (swift build -c release)")
        return
    }
    let path = temporaryDatabase("idle")
    defer { removeDatabase(path) }
    let (driver, store) = try await startFleet(binary, agents: agents, id: "run-idle", database: path)
    defer { if driver.isRunning { driver.terminate() } }
    await store.close()
    try await Task.sleep(for: .seconds(3))  // let the start settle
    let pid = driver.processIdentifier
    guard let before = cpuSeconds(of: pid) else { return }
    let start = ContinuousClock.now
    try await Task.sleep(for: .seconds(10))
    guard let after = cpuSeconds(of: pid) else { return }
    let elapsed = seconds(start.duration(to: .now))
    report("idle_fleet_\(agents)agents_cpu", (after - before) / elapsed * 100, "%core")
    driver.interrupt()
    driver.waitUntilExit()
}
