import Foundation
import Testing
import TroupeTestSupport
import Troupe
import TroupeSQLite
import TroupeTestKit

/// Drives the built `troupe` binary as operators do: one process runs, others steer it through the database.
@Suite(.timeLimit(.minutes(4)))
struct OperatorTests: CLIHarness {
    /// The suite instance's own directory, removed with the instance when its test ends.
    let scratch: ScratchDirectory
    var database: String { scratch.file("troupe.db") }

    init() throws { scratch = try ScratchDirectory("troupe-cli-") }

    /// Starts `troupe run …` in the foreground of a child process.
    func start(_ arguments: [String]) async throws -> Process {
        let process = Process()
        process.executableURL = Troupe.binary
        process.arguments = arguments + ["--database", database]
        // Its output goes to the scratch directory, so that a failure can say what the process said.
        let log = scratch.file("\(arguments.first ?? "troupe")-\(UUID().uuidString.prefix(8)).log")
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = handle
        process.standardError = handle
        try await launch(process)
        try handle.close()
        return process
    }

    /// What the processes this test started have printed so far, for failure messages.
    func processLogs() -> String {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: scratch.path)) ?? []
        return names.filter { $0.hasSuffix(".log") }.sorted().map { name in
            let text = (try? String(contentsOfFile: scratch.file(name), encoding: .utf8)) ?? ""
            return "--- \(name):\n" + String(text.suffix(4_000))
        }.joined(separator: "\n")
    }

    /// The runs `troupe ps` lists; none while the starting process has not created the database yet.
    func runs() async throws -> [[String: Any]] {
        let result = try await troupe("ps", "--json")
        guard result.status == 0 else { return [] }
        return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]] ?? []
    }

    /// Whether a run listed by `ps --json` has a live owner.
    func isDriven(_ run: [String: Any]?) -> Bool {
        (run?["owner"] as? [String: Any])?["alive"] as? Bool == true
    }

    /// The run `troupe ps` lists once its three agents are recorded; `live` also waits for a live owner (a run
    /// that a loaded machine let finish before a look would never be).
    func liveRun(live: Bool = true) async throws -> String {
        var last = "", found = ""
        let listed = try await poll(within: .seconds(60)) {
            let result = try await troupe("ps", "--json")
            last = "ps exited \(result.status): \(result.stdout) \(result.stderr)"
            let runs = result.status == 0
                ? try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]] ?? [] : []
            guard let run = runs.first, !live || isDriven(run), (run["agents"] as? Int ?? 0) == 3 else { return false }
            found = run["id"] as? String ?? ""
            return true
        }
        if listed { return found }
        Issue.record("timed out waiting for a live run in `troupe ps`; last \(last)\n\(processLogs())")
        return ""
    }

    /// The counter's latest committed state (empty until it has one).
    func counter(_ run: String) async throws -> [String: Any] {
        let state = try await troupe("checkpoints", run, "counter", "--show", "last")
        guard state.status == 0 else { return [:] }
        return (try? JSONSerialization.jsonObject(with: Data(state.stdout.utf8)) as? [String: Any]) ?? [:]
    }

    /// `troupe send` delivers a message from outside the run, decoded as the agent's type: to one agent, to a
    /// pool's next member, and queued for the next resume when no process drives the run. Bad JSON and a message
    /// of another shape are clear errors that change nothing.
    @Test func aCheckpointShownAsJSONSaysWhichStateVersionWroteIt() async throws {
        let result = try await troupe("run", "counting", "--param", "count=50", "--param", "interval=0s", "--id", "run-shown")
        #expect(result.status == 0, "\(result.stderr)")
        let shown = try await json("checkpoints", "run-shown", "counter", "--show", "last") as? [String: Any]
        #expect(shown?["stateVersion"] as? Int == 1)
        #expect((shown?["sequence"] as? Int ?? 0) >= 1 && (shown?["epoch"] as? Int ?? 0) >= 1, "\(String(describing: shown))")
        #expect((shown?["state"] as? [String: Any])?["count"] as? Int == 50, "\(String(describing: shown))")
        // Without --json, the state alone, to pipe.
        let plain = try await troupe("checkpoints", "run-shown", "counter", "--show", "last").stdout
        #expect((try JSONSerialization.jsonObject(with: Data(plain.utf8)) as? [String: Any])?["count"] as? Int == 50)
    }

    @Test func messagesSentFromOutsideAreHandledOnceAndBadOnesRefused() async throws {
        func handled(_ run: String, _ agent: String) async throws -> Int {
            let state = try await troupe("checkpoints", run, agent, "--show", "last")
            guard state.status == 0 else { return 0 }
            return ((try? JSONSerialization.jsonObject(with: Data(state.stdout.utf8))) as? [String: Any])?["handled"] as? Int ?? 0
        }
        let process = try await start(["run", "fleet", "--param", "workers=3"])
        defer { if process.isRunning { process.terminate() } }
        let run = try await liveRun()
        for _ in 0..<2 {
            let sent = try await troupe("send", run, "worker-1", #"{"work":{}}"#)
            #expect(sent.status == 0 && sent.stdout.contains("delivered"), "\(sent.stdout) \(sent.stderr)")
        }
        try await eventually("worker-1 to handle both messages") { try await handled(run, "worker-1") == 2 }

        let notJSON = try await troupe("send", run, "worker-1", "{work")
        #expect(notJSON.status == 65 && notJSON.stderr.contains("not JSON"), "\(notJSON.stderr)")
        let wrongShape = try await troupe("send", run, "worker-1", #"{"play":{}}"#)
        #expect(wrongShape.status == 1, "\(wrongShape.stdout) \(wrongShape.stderr)")
        #expect((wrongShape.stdout + wrongShape.stderr).contains("Fleet.Worker.Message"), "\(wrongShape.stdout) \(wrongShape.stderr)")
        let nobody = try await troupe("send", run, "nobody", #"{"work":{}}"#)
        #expect(nobody.status == 66, "\(nobody.stderr)")

        // The pool's name: its members in turn.
        for _ in 0..<3 { #expect(try await troupe("send", run, "worker", #"{"work":{}}"#).status == 0) }
        try await eventually("each member to handle its share") {
            let counts = [try await handled(run, "worker-0"), try await handled(run, "worker-1"), try await handled(run, "worker-2")]
            return counts.reduce(0, +) == 5 && counts.allSatisfy { $0 >= 1 }
        }

        // No live process: queued, and delivered exactly once by the resume.
        _ = try await troupe("cancel", run)
        await waitForExit(process)
        let queued = try await troupe("send", run, "worker-2", #"{"work":{}}"#)
        #expect(queued.status == 0 && queued.stdout.contains("queued"), "\(queued.stdout) \(queued.stderr)")
        let before = try await handled(run, "worker-2")
        let resumed = try await start(["resume", run])
        defer { if resumed.isRunning { resumed.terminate() } }
        try await eventually("the resumed run to handle the queued message") { try await handled(run, "worker-2") == before + 1 }
        _ = try await troupe("cancel", run)
        await waitForExit(resumed)
        #expect(try await handled(run, "worker-2") == before + 1)
    }

    /// `troupe wait` returns when the run has ended, and its exit code says how: 0 as asked, 3 cancelled, 1
    /// otherwise, 75 when its timeout passed first, 66 for no such run, 64 for a bad ending.
    @Test func waitEndsWithTheRunAndItsExitCodeSaysHow() async throws {
        let long = try await start(["run", "counting", "--param", "count=100000000", "--param", "interval=500ms"])
        defer { if long.isRunning { long.terminate() } }
        let run = try await liveRun()
        let early = try await troupe("wait", run, "--timeout", "0.3")
        #expect(early.status == 75 && early.stderr.contains("has not ended"), "\(early.status) \(early.stderr)")
        // A waiter that is there before the run ends.
        let waiter = Task { try await troupe("wait", run, "--for", "stopped", "--json") }
        _ = try await troupe("cancel", run)
        await waitForExit(long)
        let stopped = try await waiter.value
        #expect(stopped.status == 0, "\(stopped.stdout) \(stopped.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(stopped.stdout.utf8)) as? [String: Any]
        #expect(report?["status"] as? String == "cancelled" && report?["matched"] as? Bool == true, "\(stopped.stdout)")
        #expect(try await troupe("wait", run).status == 3)
        #expect(try await troupe("wait", run, "--for", "failed").status == 3)
        #expect(try await troupe("wait", run, "--for", "any").status == 0)

        let short = try await start(["run", "counting", "--param", "count=500", "--param", "interval=1ms"])
        await waitForExit(short)
        let finished = try await runs().first { $0["id"] as? String != run }?["id"] as? String ?? ""
        let completed = try await troupe("wait", finished)
        #expect(completed.status == 0 && completed.stdout.contains("completed"), "\(completed.stdout) \(completed.stderr)")
        #expect(try await troupe("wait", finished, "--for", "failed").status == 1)
        #expect(try await troupe("wait", "run-nope").status == 66)
        #expect(try await troupe("wait", finished, "--for", "sideways").status == 64)
        #expect(try await troupe("wait", finished, "--timeout", "-1").status == 64)
    }

    @Test func aLiveRunIsSteeredFromAnotherProcess() async throws {
        let process = try await start(["run", "counting", "--param", "count=100000000", "--param", "interval=500ms"])
        defer { if process.isRunning { process.terminate() } }
        let run = try await liveRun()

        let restart = try await troupe("restart", run, "relay")
        #expect(restart.status == 0, "\(restart.stderr)")
        #expect(restart.stdout.contains("restarted from its last checkpoint"))

        let pause = try await troupe("pause", run)
        #expect(pause.stdout.contains("paused 3 agents"))
        #expect((try await json("status", run) as? [String: Any]).flatMap { $0["run"] as? [String: Any] }?["status"] as? String == "paused")
        let unpause = try await troupe("unpause", run)
        #expect(unpause.stdout.contains("resumed 3 agents"))

        let stopAgent = try await troupe("cancel", run, "relay")
        #expect(stopAgent.stdout.contains("stopped"))
        let tree = try await json("tree", run) as? [[String: Any]] ?? []
        try await eventually("the relay shown stopped") {
            let tree = try await json("tree", run) as? [[String: Any]] ?? []
            return tree.first { $0["name"] as? String == "relay" }?["status"] as? String == "stopped"
        }
        #expect(tree.count == 3)

        let cancel = try await troupe("cancel", run, "--grace", "5")
        #expect(cancel.status == 0)
        await waitForExit(process)
        // Cancelled by an operator: a code of its own, so a script can tell it from a stop it asked for.
        #expect(process.terminationStatus == 3)
        #expect(try await runs().first?["status"] as? String == "cancelled")
        let events = try await troupe("events", run, "--agent", "relay")
        #expect(events.stdout.contains("restarting"))
    }

    @Test func aRunKilledWithSIGKILLResumesWithExactTotals() async throws {
        // Long enough (hours) that neither the first process nor the resumed one can finish, however slow the
        // machine: the test checks an exact prefix of the count instead of waiting for its end.
        let process = try await start(["run", "counting", "--param", "count=100000000", "--param", "interval=200ms"])
        let run = try await liveRun()
        try await eventually("some progress") { (try await counter(run)["count"] as? Int ?? 0) > 100 }
        kill(process.processIdentifier, SIGKILL)
        await waitForExit(process)
        try await eventually("the run shown crashed") { !isDriven(try await runs().first) }
        let ps = try await troupe("ps")
        #expect(ps.stdout.contains("crashed"))

        // Queued for the next resume, since no process drives the run now.
        let queued = try await troupe("restart", run, "relay")
        #expect(queued.stdout.contains("queued"))

        let second = try await start(["resume", run])
        defer { if second.isRunning { second.terminate() } }
        // A second driver for the same run is refused, naming the owner.
        // Up to 2 minutes: in CI's busiest minute a resume took over 60 s to take its lease (4 s alone).
        try await eventually("the resumed run alive", within: 120) { isDriven(try await runs().first) }
        let intruder = try await troupe("resume", run)
        #expect(intruder.status == 1)
        #expect(intruder.stderr.contains("process \(second.processIdentifier)"))

        try await eventually("the queued restart applied") {
            (try await json("status", run) as? [String: Any]).flatMap { ($0["commands"] as? [[String: Any]])?.first?["result"] as? [String: Any] }?["message"] as? String
                == "restarted from its last checkpoint"
        }
        // The resumed run goes on from where the killed one committed: well past it, then stopped and read back.
        let killedAt = try await counter(run)["count"] as? Int ?? 0
        try await eventually("progress after the resume") { (try await counter(run)["count"] as? Int ?? 0) > killedAt + 100 }
        _ = try await troupe("cancel", run)
        await waitForExit(second)
        let state = try await counter(run)
        let count = try #require(state["count"] as? Int)
        #expect(count > killedAt + 100)
        // 1 … count, each exactly once.
        #expect(state["sum"] as? Int == count * (count + 1) / 2)
        #expect(state["duplicates"] as? Int == 0)
        #expect(state["gaps"] as? Int == 0)
        let check = try await troupe("db", "check")
        #expect(check.status == 0)
        #expect(check.stdout.contains("integrity   ok"))
    }

    /// The event log is the run's history: a process that died (at its last heartbeat, naming it), the process
    /// that resumed the run, and each operator's command with who asked, why, and what came of it.
    @Test func theEventLogRecordsLostProcessesResumesAndCommands() async throws {
        let process = try await start(["run", "counting", "--param", "count=100000000", "--param", "interval=500ms"])
        let run = try await liveRun()
        let killedPid = process.processIdentifier
        kill(killedPid, SIGKILL)
        await waitForExit(process)
        try await eventually("the run shown crashed") { !isDriven(try await runs().first) }
        let second = try await start(["resume", run])
        defer { if second.isRunning { second.terminate() } }
        // Up to 2 minutes: in CI's busiest minute a resume took over 60 s to take its lease (4 s alone).
        try await eventually("the resumed run alive", within: 120) { isDriven(try await runs().first) }
        let restart = try await troupe("restart", run, "relay", "--reason", "stuck on batch 7")
        #expect(restart.status == 0, "\(restart.stderr)")

        func facts() async throws -> [[String: Any]] {
            let result = try await troupe("events", run, "--kind", "process-lost,resumed,command", "--json")
            return result.stdout.split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
        }
        try await eventually("the command in the log") { try await facts().contains { $0["event"] as? String == "command" } }
        let lines = try await facts()
        #expect(lines.map { $0["event"] as? String ?? "" } == ["process-lost", "resumed", "command"], "\(lines)")
        #expect(lines.allSatisfy { $0["agent"] as? String == "counting" })
        #expect((lines[0]["detail"] as? String)?.hasPrefix("pid \(killedPid) on ") == true, "\(lines[0])")
        #expect((lines[1]["detail"] as? String)?.hasPrefix("by pid \(second.processIdentifier) on ") == true, "\(lines[1])")
        let command = lines[2]["detail"] as? String ?? ""
        #expect(command.hasPrefix("restart relay by ") && command.contains("(\"stuck on batch 7\"): restarted from its last checkpoint"), "\(command)")
        // The process was lost at its last heartbeat, before the resume.
        #expect((lines[0]["time"] as? String ?? "") < (lines[1]["time"] as? String ?? ""))
        // The command's origin is in `status` too.
        let commands = try #require((try await json("status", run) as? [String: Any])?["commands"] as? [[String: Any]])
        #expect(commands.first?["reason"] as? String == "stuck on batch 7")
        #expect((commands.first?["by"] as? String)?.contains("@") == true)
        _ = try await troupe("cancel", run)
        await waitForExit(second)
    }

    /// `troupe logs` prints what the agents logged, though the run was started without --log-level; the event log
    /// shows those lines only when asked (`--kind log`).
    @Test func logsShowWhatAgentsLogged() async throws {
        let result = try await troupe("run", "fetch-many", "--param", "count=12", "--json")
        #expect(result.status == 0, "\(result.stderr)")
        let run = try #require(try await runs().first?["id"] as? String)
        let logs = try await troupe("logs", run)
        #expect(logs.status == 0, "\(logs.stderr)")
        // The offline catalog fails some URLs on purpose: "fetched N of 12 URLs; M failed".
        #expect(logs.stdout.contains("fetcher#1        notice   fetched ") && logs.stdout.contains(" of 12 URLs; "), "\(logs.stdout)")
        let ofFetcher = try await troupe("logs", run, "fetcher", "--tail", "1", "--json")
        let line = try #require(try JSONSerialization.jsonObject(with: Data(ofFetcher.stdout.utf8)) as? [String: Any])
        #expect(line["event"] as? String == "log" && (line["detail"] as? String)?.hasPrefix("notice fetched ") == true, "\(line)")
        #expect(try await troupe("logs", run, "--level", "error").stdout.isEmpty)
        #expect(!(try await troupe("events", run).stdout.contains(" of 12 URLs")))
        #expect(try await troupe("events", run, "--kind", "log").stdout.contains(" of 12 URLs"))
        let nobody = try await troupe("logs", run, "nobody")
        #expect(nobody.status == 66 && nobody.stderr.contains("has no agent 'nobody'"), "\(nobody.stderr)")
    }

    /// The completion scripts ask the binary (`troupe ---completion VERB -- ARGUMENT WORD-INDEX CURSOR WORDS…`, as
    /// swift-argument-parser's scripts do) for run ids and agent names from the store on the command line,
    /// blueprint names, and a blueprint's parameters.
    @Test func completionOffersRunsAgentsBlueprintsAndParameters() async throws {
        #expect(try await troupe("run", "fetch-many", "--param", "count=3").status == 0)
        let run = try #require(try await runs().first?["id"] as? String)
        // The words of a command line that names its store, the word being completed last.
        func complete(_ verb: String, _ argument: String, _ words: String..., cursor: Int) async throws -> [String] {
            let line = ["troupe", "--database", database] + words
            let result = try await Troupe.run(
                arguments: ["---completion", verb, "--", argument, String(line.count - 1), String(cursor)] + line
            )
            return result.stdout.split(separator: "\n").map(String.init)
        }
        #expect(try await complete("status", "positional@0", "status", "", cursor: 0) == [run])
        #expect(try await complete("describe", "positional@1", "describe", run, "", cursor: 0) == ["fetcher"])
        #expect(try await complete("run", "positional@0", "run", "fet", cursor: 3) == ["fetch-many"])
        #expect(try await complete("run", "--param", "run", "fetch-many", "--param", "c", cursor: 1) == ["count=", "concurrency="])
    }

    /// `troupe top` prints one view when its output is not a terminal: the runs with their rates, and a run's tree
    /// folded by supervisor with the agents worth a look.
    @Test func topShowsRunsRatesAndAFoldedTree() async throws {
        let process = try await start(["run", "counting", "--param", "count=100000000", "--param", "interval=200ms"])
        defer { if process.isRunning { process.terminate() } }
        let run = try await liveRun()
        // With what the CLI and the run said if it fails: it once waited past its 90 s under load, cause unknown.
        let restart = try await troupe("restart", run, "relay")
        #expect(restart.status == 0 && restart.stdout.contains("restarted"), "\(restart.stdout) \(restart.stderr)\n\(processLogs())")
        let top = try await troupe("top", run, "--interval", "0.5")
        #expect(top.status == 0, "\(top.stderr)")
        let lines = top.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines.first?.hasPrefix("troupe top · ") == true && lines.first?.contains("1 of 1 runs not ended") == true, "\(top.stdout)")
        let row = try #require(lines.first { $0.hasPrefix(run) }, "\(top.stdout)")
        let cells = row.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        // RUN BLUEPRINT STATUS AGE AGENTS RESTARTS +RESTARTS EVENTS/s CKPT/s OWNER…: the counter checkpoints as it counts.
        #expect(cells[1] == "counting" && cells[2] == "running" && cells[4] == "3" && cells[5] == "1", "\(row)")
        #expect((Double(cells[8]) ?? 0) > 0, "no checkpoints per second in \(row)")
        #expect(lines.contains { $0.hasPrefix("(root): 3 agents · 3 running · 1 restart · ") }, "\(top.stdout)")
        #expect(lines.contains { $0.hasPrefix("relay ") && $0.contains("running") }, "the restarted relay is not listed: \(top.stdout)")
        #expect(try await troupe("top", "--json").status == 64)
        _ = try await troupe("cancel", run)
        await waitForExit(process)
    }

    /// Checkpoints are not rows of the event log unless `--checkpoint-events` asks for them.
    @Test func checkpointRowsAreOffUnlessAskedFor() async throws {
        func checkpointRows(_ extra: [String]) async throws -> Int {
            let result = try await troupe(["run", "counting", "--param", "count=200", "--param", "interval=1ms", "--id", "run-ce\(extra.count)"] + extra)
            #expect(result.status == 0, "\(result.stderr)")
            let rows = try await troupe("events", "run-ce\(extra.count)", "--kind", "checkpointed", "--json")
            return rows.stdout.split(separator: "\n").count
        }
        #expect(try await checkpointRows([]) == 0)
        #expect(try await checkpointRows(["--checkpoint-events"]) > 0)
    }

    @Test func aForkIsAConsistentCutThatCountsOnExactly() async throws {
        // Every checkpoint kept: a fork from any of them is a consistent cut (see the conformance suite for the
        // refusal when an agent's checkpoint from that moment was pruned).
        // Enough for a history with numbers in flight, little enough CPU for a loaded machine to count through.
        let count = 2_000
        let process = try await start(["run", "counting", "--param", "count=\(count)", "--param", "interval=5ms", "--retain", "100000"])
        // Live or, on a loaded machine, already completed: every checkpoint is kept either way.
        let run = try await liveRun(live: false)
        try await eventually("a few checkpoints") { (try await counter(run)["count"] as? Int ?? 0) > 100 }
        _ = try await troupe("cancel", run)
        await waitForExit(process)
        let history = try await json("checkpoints", run, "counter") as? [[String: Any]] ?? []
        // From the middle of the counter's history: the source and the relay had moved on by other amounts, and
        // numbers were in flight between them.
        let chosen = try #require(history[history.count / 2]["sequence"] as? Int)
        let original = try await troupe("checkpoints", run, "counter", "--show", String(chosen)).stdout

        let fork = try await json("fork", run, "--from", "counter@\(chosen)") as? [String: Any]
        let forked = try #require(fork?["run"] as? String)
        #expect(try await troupe("checkpoints", forked, "counter", "--show", String(chosen)).stdout == original)
        #expect(try await runs().map { $0["id"] as? String }.contains(forked))
        // The original keeps its history.
        #expect((try await json("checkpoints", run, "counter") as? [[String: Any]] ?? []).count == history.count)

        // The fork counts on from there, with the numbers that were in flight then: every number exactly once.
        let resumed = try await self.start(["resume", forked])
        // Durable commits on a machine under load: allow most of the test's time limit.
        try await eventually("the fork to count to the end", within: 80) { (try await counter(forked)["count"] as? Int ?? 0) >= count }
        // A fork that lost numbers in flight never gets there: stop it rather than wait for it.
        if (try await counter(forked)["count"] as? Int ?? 0) < count { _ = try await troupe("cancel", forked) }
        await waitForExit(resumed)
        #expect(resumed.terminationStatus == 0)
        let state = try await counter(forked)
        #expect(state["count"] as? Int == count)
        #expect(state["sum"] as? Int == count * (count + 1) / 2)
        #expect(state["duplicates"] as? Int == 0)
        #expect(state["gaps"] as? Int == 0)
    }

    @Test func errorsExitWithTheirClass() async throws {
        let unknownRun = try await troupe("tree", "run-nope")
        #expect(unknownRun.status == 66, "no database yet: \(unknownRun.stderr)")
        _ = try await troupe("db", "migrate")
        #expect(try await troupe("status", "run-nope").status == 66)
        let unknownBlueprint = try await troupe("run", "nope")
        #expect(unknownBlueprint.status == 66)
        #expect(unknownBlueprint.stderr.contains("counting"))
        let badValue = try await troupe("run", "counting", "--param", "count=lots")
        #expect(badValue.status == 65)
        #expect(badValue.stderr.contains("parameter 'count'"))
        #expect(try await troupe("run", "counting", "--param", "colour=red").status == 65)
        #expect(try await troupe("run", "counting", "--param", "count").status == 65)
        #expect(try await troupe("fork", "run-nope", "--from", "counter").status == 64)
        #expect(try await troupe("prune", "--keep", "0").status == 64)

        // A database another process holds locked: temporary, safe to retry.
        let locker = Process()
        locker.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        locker.arguments = ["python3", "-c", "import sqlite3,sys,time; c=sqlite3.connect(sys.argv[1], isolation_level=None); c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); time.sleep(30)", database]
        let output = await makePipe()
        locker.standardOutput = output
        try await launch(locker)
        defer { locker.terminate() }
        _ = await offThePool { output.fileHandleForReading.availableData }
        let busy = try await Troupe.run(arguments: ["run", "counting", "--database", database, "--busy-timeout", "0.2"])
        #expect(busy.status == 75, "\(busy.stderr)")
        #expect(busy.stderr.contains("locked"))
    }

    @Test func anotherProcessHoldingTheWriteLockDelaysARunButCrashesNothing() async throws {
        let process = try await start(["run", "counting", "--param", "count=100000000", "--param", "interval=5ms", "--busy-timeout", "0.4"])
        defer { if process.isRunning { process.terminate() } }
        let run = try await liveRun()
        try await eventually("some progress") { (try await counter(run)["count"] as? Int ?? 0) > 50 }
        // Another process (a long maintenance job, a large run starting) holds the write lock for longer than one
        // busy timeout, less than the writer's patience.
        let locker = Process()
        locker.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        locker.arguments = ["python3", "-c", "import sqlite3,sys,time; c=sqlite3.connect(sys.argv[1], isolation_level=None); c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); time.sleep(0.9); c.execute('COMMIT')", database]
        let output = await makePipe()
        locker.standardOutput = output
        try await launch(locker)
        _ = await offThePool { output.fileHandleForReading.availableData }
        await waitForExit(locker)
        let after = try await counter(run)["count"] as? Int ?? 0
        try await eventually("counting on after the lock") { (try await counter(run)["count"] as? Int ?? 0) > after + 100 }
        let state = try await counter(run)
        #expect(state["duplicates"] as? Int == 0 && state["gaps"] as? Int == 0, "\(state)")
        let events = try await troupe("events", run)
        #expect(!events.stdout.contains("crashed"), "a lock wait crashed an agent:\n\(events.stdout)")
        #expect(try await runs().first?["restarts"] as? Int == 0)
        _ = try await troupe("cancel", run)
        await waitForExit(process)
    }

    @Test func numbersThatAreNoDurationAreUsageErrorsNotCrashes() async throws {
        for bad in ["inf", "nan", "1e300", "-1"] {
            let cancel = try await troupe("cancel", "run-x", "--grace", bad)
            #expect(cancel.status == 64, "--grace \(bad): \(cancel.stderr)")
            #expect(cancel.stderr.contains("--grace"), "\(cancel.stderr)")
            let busy = try await troupe("ps", "--busy-timeout", bad)
            #expect(busy.status == 64, "--busy-timeout \(bad): \(busy.stderr)")
            let drain = try await troupe("drain", "1", "--wait", "--timeout=\(bad)")
            #expect(drain.status == 64 && drain.stderr.contains("--timeout"), "--timeout \(bad): \(drain.stderr)")
        }
        let prune = try await troupe("prune", "--events-older-than", "9999999999999d")
        #expect(prune.status == 64, "\(prune.stderr)")
        for bad in ["inf", "1e30", "1e30ms", "nan"] {
            let param = try await troupe("run", "market-monitor", "--param", "interval=\(bad)")
            #expect(param.status == 65, "interval=\(bad): \(param.stderr)")
            #expect(param.stderr.contains("parameter 'interval'"), "\(param.stderr)")
            #expect(!param.stderr.contains("Fatal error"), "\(param.stderr)")
        }
    }

    @Test func aStoredCommandThatCannotBeAppliedFailsWithoutCrashingTheRun() async throws {
        let process = try await start(["run", "counting", "--param", "count=100000000"])
        let run = try await liveRun()
        // Written as another tool (or an older troupe) might: the CLI itself refuses this value.
        let store = try await SQLiteStore(path: database)
        _ = try await store.write { connection in
            try connection.statement(
                "INSERT INTO commands (run_id, verb, arguments, created_at) VALUES (?, 'cancel', '{\"grace\":\"inf\"}', 0)"
            ).run(.text(run))
        }
        await store.close()
        var result: [String: Any] = [:]
        try await eventually("the command completed") {
            let commands = (try await json("status", run) as? [String: Any])?["commands"] as? [[String: Any]] ?? []
            result = commands.first?["result"] as? [String: Any] ?? [:]
            return !result.isEmpty
        }
        #expect(result["outcome"] as? String == "refused", "\(result)")
        #expect((result["message"] as? String ?? "").contains("grace"), "\(result)")
        #expect(process.isRunning)
        _ = try await troupe("cancel", run)
        await waitForExit(process)
    }

    @Test func aDetachedRunsLogIsPrivate() async throws {
        let started = try await json("run", "counting", "--param", "count=100000000", "--detach") as? [String: String]
        let run = try #require(started?["run"])
        let log = try #require(started?["log"])
        let mode = try FileManager.default.attributesOfItem(atPath: log)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        // `--detach` returns once the background process drives the run.
        #expect(isDriven(try await runs().first))
        _ = try await troupe("cancel", run)
        try await eventually("the detached run stopped") { !isDriven(try await runs().first) }
    }

    /// `run --detach` on a fresh database: the background process never finds the database locked by the command
    /// that started it. Before, both set up the new file at once, and with a short busy timeout a quarter of these
    /// runs ended before they began (exit 75).
    @Test func detachingOntoAFreshDatabaseNeverLocksOutTheRun() async throws {
        let databases = (1...6).map { scratch.file("fresh-\($0)/troupe.db") }
        let results = try await withThrowingTaskGroup(of: (String, Troupe.Result).self) { group in
            for database in databases {
                group.addTask {
                    let arguments = ["run", "counting", "--param", "count=100000000", "--detach", "--json", "--busy-timeout", "0.05"]
                    return (database, try await Troupe.run(arguments: arguments + ["--database", database]))
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        for (database, result) in results {
            #expect(result.status == 0, "\(database): \(result.stderr)")
            guard result.status == 0,
                let started = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: String],
                let run = started["run"]
            else { continue }
            _ = try await Troupe.run(arguments: ["cancel", run, "--database", database])
        }
        for database in databases {
            try await eventually("the detached run on \(database) stopped") {
                let listed = try await Troupe.run(arguments: ["ps", "--json", "--database", database])
                let runs = try? JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]]
                return listed.status != 0 || !isDriven(runs?.first)
            }
        }
    }

    @Test func listingVerbsNeverCreateMigrateOrWriteTheDatabase() async throws {
        // No database yet: no runs, exit 0, and still no file.
        let none = try await troupe("ps")
        #expect(none.status == 0 && none.stdout.hasPrefix("RUN"), "\(none)")
        #expect(try await json("ps") as? [Any] != nil)
        #expect(!FileManager.default.fileExists(atPath: database))
        #expect(try await troupe("status", "run-nope").status == 66)

        // An empty file stays empty: reading verbs do not turn it into a Troupe database.
        _ = FileManager.default.createFile(atPath: database, contents: Data())
        let empty = try await troupe("ps")
        #expect(empty.status == 65 && empty.stderr.contains("holds no Troupe database"), "\(empty)")
        #expect(try FileManager.default.attributesOfItem(atPath: database)[.size] as? Int == 0)
        try FileManager.default.removeItem(atPath: database)

        // A real database is read without a single write: its bytes stay the same.
        try await endedRuns([("run-a", .completed)])
        let before = try Data(contentsOf: URL(fileURLWithPath: database))
        for verb in [["ps"], ["status", "run-a"], ["tree", "run-a"], ["events", "run-a"], ["dead-letters", "run-a"], ["db", "check"]] {
            let result = try await Troupe.run(arguments: verb + ["--database", database])
            #expect(result.status == 0, "\(verb): \(result.stderr)")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: database)) == before)
    }

    /// A cleanly closed database on a read-only file system (a read-only bind mount; it needs root) is listed.
    @Test(.enabled(if: geteuid() == 0, "a read-only bind mount needs root"))
    func listingVerbsWorkOnAReadOnlyFileSystem() async throws {
        try await endedRuns([("run-a", .completed)])
        let directory = (database as NSString).deletingLastPathComponent
        // As a copy or a backup would be: the database file alone, without -wal and -shm.
        for suffix in ["-wal", "-shm"] { try? FileManager.default.removeItem(atPath: database + suffix) }
        let mountPoint = directory + "-ro"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        func shell(_ arguments: [String]) async throws -> Int32 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = arguments
            process.standardError = FileHandle.nullDevice
            try await launch(process)
            await waitForExit(process)
            return process.terminationStatus
        }
        guard try await shell(["mount", "--bind", directory, mountPoint]) == 0 else {
            Issue.record("mount --bind failed; cannot make a read-only file system here")
            return
        }
        defer { Task { _ = try? await shell(["umount", mountPoint]) } }
        #expect(try await shell(["mount", "-o", "remount,ro,bind", mountPoint]) == 0)
        let readOnly = mountPoint + "/troupe.db"
        for verb in [["ps"], ["status", "run-a"], ["tree", "run-a"], ["events", "run-a"], ["db", "check"]] {
            let result = try await Troupe.run(arguments: verb + ["--database", readOnly])
            #expect(result.status == 0, "\(verb): \(result.stderr)")
        }
        #expect(try await Troupe.run(arguments: ["ps", "--database", readOnly]).stdout.contains("run-a"))
        if try await shell(["umount", mountPoint]) == 0 { try? FileManager.default.removeItem(atPath: mountPoint) }
    }

    @Test func parametersOutsideTheirDeclaredRangeAreRefusedBeforeAnythingStarts() async throws {
        let cases: [(String, String, String)] = [
            ("counting", "count", "-5"), ("counting", "count", "0"), ("batch-stream", "batches", "-1"),
            ("batch-stream", "size", "0"), ("market-monitor", "interval", "0s"), ("llm-chat", "budget", "-1"),
            ("fetch-many", "count", "-1"), ("fetch-many", "concurrency", "0"), ("market-monitor", "threshold", "nan"),
        ]
        for (blueprint, name, value) in cases {
            let result = try await troupe("run", blueprint, "--param", "\(name)=\(value)")
            #expect(result.status == 65, "\(blueprint) \(name)=\(value): \(result.stderr)")
            #expect(result.stderr.contains("parameter '\(name)'") && result.stderr.contains("'\(value)'"), "\(result.stderr)")
            #expect(result.stderr.contains(" from "), "the message says what is allowed: \(result.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: database), "a refused run created the database")
        let listing = try await json("blueprints") as? [[String: Any]] ?? []
        let counting = listing.first { $0["name"] as? String == "counting" }?["parameters"] as? [[String: Any]] ?? []
        let count = counting.first { $0["name"] as? String == "count" }?["kind"] as? [String: Any]
        #expect(count?["type"] as? String == "integer" && count?["min"] as? Int == 1, "\(String(describing: count))")
    }

    @Test func aFrozenOwnerIsNamedWithWhatWorks() async throws {
        let process = try await start(["run", "counting", "--param", "count=100000000", "--param", "interval=500ms"])
        defer {
            kill(process.processIdentifier, SIGCONT)
            if process.isRunning { process.terminate() }
        }
        let run = try await liveRun()
        kill(process.processIdentifier, SIGSTOP)
        var refusal = ""
        try await eventually("the refusal to say the owner is silent") {
            let resume = try await troupe("resume", run)
            refusal = resume.stderr
            return resume.status == 1 && refusal.contains("has not renewed its lease")
        }
        #expect(refusal.contains("kill -CONT \(process.processIdentifier)") && refusal.contains("or wait about"), "\(refusal)")
        #expect(!refusal.contains("troupe cancel \(run)`)"), "a frozen owner cannot apply troupe cancel: \(refusal)")
        kill(process.processIdentifier, SIGCONT)
        _ = try await troupe("cancel", run)
        await waitForExit(process)
    }

    /// A database `run --detach` cannot use is refused before any background process starts; an error that only
    /// the background process meets is reported as its own, with its exit code.
    @Test func aDetachedRunThatFailsAtOnceReportsItsError() async throws {
        _ = FileManager.default.createFile(atPath: database, contents: Data("not a database at all".utf8))
        let refused = try await troupe("run", "counting", "--detach")
        #expect(refused.status == 65, "\(refused.stdout) \(refused.stderr)")
        #expect(refused.stderr.contains("not a SQLite database"), "\(refused.stderr)")
        #expect(!refused.stdout.contains("started run"), "\(refused.stdout)")
        // Nothing was started, so no log was created next to it.
        let logs = try FileManager.default.contentsOfDirectory(atPath: scratch.path).filter { $0.hasSuffix(".log") }
        #expect(logs.isEmpty, "\(logs)")
        #expect(try String(contentsOfFile: database, encoding: .utf8) == "not a database at all")

        // A failure only the background process meets: the metrics address it is to listen on is taken.
        try FileManager.default.removeItem(atPath: database)
        let taken = try OccupiedPort()
        let ended = try await troupe("run", "counting", "--detach", "--metrics", "127.0.0.1:\(taken.port)")
        #expect(ended.status == 65, "\(ended.stdout) \(ended.stderr)")
        #expect(ended.stderr.contains("ended at once") && ended.stderr.contains("cannot listen on 127.0.0.1:\(taken.port)"), "\(ended.stderr)")
        #expect(!ended.stdout.contains("started run"), "\(ended.stdout)")
    }

    /// `run --id` of a run the database has is refused, naming it; it used to drive that run again.
    @Test func runRefusesAnIDTheDatabaseAlreadyHas() async throws {
        let first = try await troupe("run", "counting", "--param", "count=3", "--id", "run-taken")
        #expect(first.status == 0, "\(first.stderr)")
        let eventsBefore = try await troupe("events", "run-taken").stdout
        for extra in [[], ["--detach"]] {
            let again = try await troupe(["run", "counting", "--param", "count=5", "--id", "run-taken"] + extra)
            #expect(again.status == 64, "\(extra): \(again.stdout) \(again.stderr)")
            #expect(again.stderr.contains("already has a run run-taken (counting, completed)"), "\(again.stderr)")
            #expect(again.stderr.contains("troupe resume run-taken"), "\(again.stderr)")
        }
        #expect(try await troupe("events", "run-taken").stdout == eventsBefore)
    }

    @Test func listingsAreJSONForScripts() async throws {
        let blueprints = try await json("blueprints") as? [[String: Any]] ?? []
        #expect(blueprints.map { $0["name"] as? String } == ["fetch-many", "market-monitor", "batch-stream", "llm-chat", "approval", "counting", "fleet", "demo"])
        let process = try await start(["run", "counting", "--param", "count=100000000", "--param", "interval=200ms"])
        let run = try await liveRun()
        let status = try await json("status", run) as? [String: Any]
        #expect((status?["run"] as? [String: Any])?["blueprint"] as? String == "counting")
        #expect((status?["agents"] as? [Any])?.count == 3)
        _ = try await troupe("cancel", run)
        await waitForExit(process)
        let events = try await Troupe.run(arguments: ["events", run, "--json", "--database", database])
        let lines = events.stdout.split(separator: "\n")
        #expect(!lines.isEmpty)
        for line in lines {
            let event = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(event?["sequence"] is Int)
            #expect(event?["type"] as? String == "event")
            #expect(event?["event"] is String)
            // One time format in JSON everywhere: RFC 3339 with milliseconds, UTC.
            let time = event?["time"] as? String ?? ""
            #expect(time.count == 24 && time.hasSuffix("Z") && time.contains("T"), "\(time)")
        }
        let since = try #require((try JSONSerialization.jsonObject(with: Data(lines[1].utf8)) as? [String: Any])?["sequence"] as? Int)
        let later = try await Troupe.run(arguments: ["events", run, "--json", "--since", String(since), "--database", database])
        #expect(later.stdout.split(separator: "\n").count == lines.count - 2)
    }

    @Test func deadLettersAreListedRequeuedAndPurged() async throws {
        let store = try await SQLiteStore(path: database)
        let run = RunID("run-dead")
        _ = try await store.attach(RunRecord(id: run, blueprint: "counting", agents: ["counter"]))
        for value in [7, 8, 9] {
            try await store.deadLetter(
                DeadLetter(agent: AgentID(run: run, name: "counter"), message: Array("{\"value\":{\"_0\":\(value)}}".utf8), error: "boom \(value)", failures: 3)
            )
        }
        await store.detach(run, outcome: .failed, error: "killed")
        await store.close()

        let letters = try await json("dead-letters", "run-dead") as? [[String: Any]] ?? []
        #expect(letters.map { $0["error"] as? String } == ["boom 7", "boom 8", "boom 9"])
        let first = try #require(letters.first?["id"] as? Int)
        for action in ["requeue", "purge"] {
            let missing = try await troupe("dead-letters", "run-dead", action, "--id", "999")
            #expect(missing.status == 66, "\(action): \(missing.stderr)")
            #expect(missing.stderr.contains("#999"), "\(missing.stderr)")
        }
        #expect((try await json("dead-letters", "run-dead") as? [Any])?.count == 3, "a refused id changed nothing")
        let noAgent = try await troupe("events", "run-dead", "--agent", "nosuch")
        #expect(noAgent.status == 66, "\(noAgent.stderr)")
        let requeue = try await troupe("dead-letters", "run-dead", "requeue", "--id", String(first))
        #expect(requeue.stdout.contains("requeued 1 messages"))
        #expect((try await json("dead-letters", "run-dead") as? [Any])?.count == 2)
        #expect((try await json("status", "run-dead") as? [String: Any])?["deadLetters"] as? Int == 2)
        let purge = try await troupe("dead-letters", "run-dead", "purge")
        #expect(purge.stdout.contains("purged 2 dead letters"))
        #expect((try await json("dead-letters", "run-dead") as? [Any])?.isEmpty == true)
    }

    /// Records ended runs in the database, as finished processes would have left them.
    func endedRuns(_ runs: [(String, RunOutcome)]) async throws {
        let store = try await SQLiteStore(path: database)
        for (id, outcome) in runs {
            _ = try await store.attach(RunRecord(id: RunID(id), blueprint: "counting", agents: ["counter"]))
            let claim = try await store.claim(AgentID(run: RunID(id), name: "counter"), type: "Counter", durability: .durable, incarnation: 1)
            let checkpoint = Checkpoint(agent: AgentID(run: RunID(id), name: "counter"), epoch: claim.epoch, sequence: 1, stateVersion: 1, state: [1])
            _ = try await store.commit(Commit(run: RunID(id), agent: AgentID(run: RunID(id), name: "counter"), epoch: claim.epoch, checkpoint: checkpoint))
            await store.detach(RunID(id), outcome: outcome, error: nil)
        }
        await store.close()
    }

    /// `ps` filters by status, blueprint and age, keeps the newest N, prints ids alone with `-q`, and shows when
    /// each run ended and how long it lasted. Every verb takes the beginning of a run's id when exactly one run's
    /// id begins so; an ambiguous beginning is a usage error naming the runs, an unknown one is "not found".
    @Test func psFiltersAndEveryVerbTakesARunIdPrefix() async throws {
        try await endedRuns([("run-alpha", .completed), ("run-beta", .stopped), ("run-bravo", .failed)])
        func ids(_ arguments: String...) async throws -> Set<String> {
            let result = try await troupe(["ps", "-q"] + arguments)
            #expect(result.status == 0, "\(result.stderr)")
            return Set(result.stdout.split(separator: "\n").map(String.init))
        }
        #expect(try await ids() == ["run-alpha", "run-beta", "run-bravo"])
        #expect(try await ids("--status", "completed,failed") == ["run-alpha", "run-bravo"])
        #expect(try await ids("--status", "stopped", "--status", "failed") == ["run-beta", "run-bravo"])
        #expect(try await ids("--blueprint", "counting", "--since", "1h") == ["run-alpha", "run-beta", "run-bravo"])
        #expect(try await ids("--blueprint", "fleet").isEmpty)
        #expect(try await ids("--limit", "2").count == 2)
        for bad in [["--status", "bogus"], ["--since", "yesterday"], ["--limit", "0"], ["--json"]] {
            let refused = try await troupe(["ps", "-q"] + bad)
            #expect(refused.status == 64 && refused.stdout.isEmpty, "ps -q \(bad): \(refused.status) \(refused.stderr)")
        }
        let table = try await troupe("ps", "--status", "completed")
        let lines = table.stdout.split(separator: "\n")
        #expect(lines.count == 2 && lines[0].contains("ENDED") && lines[0].contains("DURATION") && lines[1].hasPrefix("run-alpha"), "\(table.stdout)")

        let status = try await troupe("status", "run-a")
        #expect(status.status == 0 && status.stdout.contains("run-alpha"), "\(status.stdout) \(status.stderr)")
        let ambiguous = try await troupe("status", "run-b")
        #expect(ambiguous.status == 64, "\(ambiguous.stderr)")
        #expect(ambiguous.stderr.contains("run-beta") && ambiguous.stderr.contains("run-bravo"), "\(ambiguous.stderr)")
        #expect(try await troupe("status", "run-z").status == 66)
        #expect(try await troupe("checkpoints", "run-br", "counter").status == 0)
        #expect(try await troupe("events", "run-al").status == 0)
        #expect(try await troupe("wait", "run-al").status == 0)
        #expect(try await troupe("rm", "run-be").status == 0)
        #expect(try await ids() == ["run-alpha", "run-bravo"])
    }

    /// `describe` tells one agent's story: the demo's transformer crashed once on an injected fault and was
    /// restarted, and its description says so with the error in full and its time, its history and its state.
    @Test func describeTellsAnAgentsStory() async throws {
        let demo = try await troupe("run", "demo")
        #expect(demo.status == 0, "\(demo.stderr)")
        let run = try #require(try await runs().first?["id"] as? String)
        let text = try await troupe("describe", String(run.prefix(8)), "transformer")
        #expect(text.status == 0, "\(text.stderr)")
        for expected in ["type         BatchTransformer", "restarts     1", "injected fault on batch 3", "#1  crashed", "#2  restarting", "\"passed\" : 10"] {
            #expect(text.stdout.contains(expected), "no '\(expected)' in:\n\(text.stdout)")
        }
        let document = try #require(try await json("describe", run, "transformer") as? [String: Any])
        #expect(document["restarts"] as? Int == 1 && document["lastError"] as? String == "injected fault on batch 3", "\(document)")
        #expect(document["lastErrorAt"] is String && (document["history"] as? [Any])?.count == 5, "\(document)")
        let quiet = try await troupe("describe", run, "transformer", "--history", "0")
        #expect(quiet.status == 0 && !quiet.stdout.contains("history"), "\(quiet.stdout)")
        let unknown = try await troupe("describe", run, "nobody")
        #expect(unknown.status == 66 && unknown.stderr.contains("transformer"), "\(unknown.stderr)")
        #expect(try await troupe("describe", run, "transformer", "--history", "-1").status == 64)
    }

    /// `events` narrows the log: by event name (`--kind`, repeated or with commas), to the last N (`--tail`), to a
    /// recent window (`--since 10m`) or after a sequence number (`--since SEQ`); bad values are usage errors.
    @Test func eventsFilterByKindTailAndAge() async throws {
        #expect(try await troupe("run", "demo").status == 0)
        let run = try #require(try await runs().first?["id"] as? String)
        func lines(_ arguments: String...) async throws -> [[String: Any]] {
            let result = try await troupe(["events", run, "--json"] + arguments)
            #expect(result.status == 0, "\(arguments): \(result.stderr)")
            return try result.stdout.split(separator: "\n").map {
                try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
            }
        }
        let all = try await lines()
        let failures = try await lines("--kind", "crashed,restarting")
        #expect(!failures.isEmpty && failures.allSatisfy { ["crashed", "restarting"].contains($0["event"] as? String) }, "\(failures)")
        #expect(failures.count == all.filter { ["crashed", "restarting"].contains($0["event"] as? String) }.count)
        let crashes = try await lines("--kind", "crashed", "--kind", "started")
        #expect(crashes.count == all.filter { ["crashed", "started"].contains($0["event"] as? String) }.count)
        let tail = try await lines("--tail", "3")
        #expect(tail.map { $0["sequence"] as? Int } == all.suffix(3).map { $0["sequence"] as? Int })
        #expect(try await lines("--since", "1h").count == all.count)
        let after = try #require(all[all.count / 2]["sequence"] as? Int)
        #expect(try await lines("--since", String(after)).count == all.filter { ($0["sequence"] as? Int ?? 0) > after }.count)
        for bad in [["--kind", "bogus"], ["--since", "yesterday"], ["--tail", "-1"]] {
            #expect(try await troupe(["events", run] + bad).status == 64, "\(bad)")
        }
    }

    /// `result` prints what a run produced, as its blueprint declares it: the counter's state of a counting run;
    /// a run still going prints its result so far and says so; a blueprint without a result answers 66.
    @Test func resultPrintsWhatARunProduced() async throws {
        #expect(try await troupe("run", "counting", "--param", "count=200", "--param", "interval=1ms").status == 0)
        let run = try #require(try await runs().first?["id"] as? String)
        let text = try await troupe("result", run)
        #expect(text.status == 0 && text.stderr.isEmpty, "\(text.stderr)")
        let state = try #require(try JSONSerialization.jsonObject(with: Data(text.stdout.utf8)) as? [String: Int])
        #expect(state["count"] == 200 && state["sum"] == 20_100 && state["duplicates"] == 0, "\(state)")
        let document = try #require(try await json("result", String(run.prefix(7))) as? [String: Any])
        #expect(document["status"] as? String == "completed" && document["agent"] as? String == "counter", "\(document)")
        #expect((document["result"] as? [String: Int])?["count"] == 200, "\(document)")

        let process = try await start(["run", "counting", "--param", "count=100000000", "--param", "interval=200ms"])
        let live = try await liveRun()
        try await eventually("a first result") { try await troupe("result", live).status == 0 }
        let partial = try await troupe("result", live)
        #expect(partial.stderr.contains("not completed: this is its result so far"), "\(partial.stderr)")
        _ = try await troupe("cancel", live)
        await waitForExit(process)

        #expect(try await troupe("run", "batch-stream", "--param", "batches=2", "--param", "size=2").status == 0)
        let stream = try #require(try await runs().first { $0["blueprint"] as? String == "batch-stream" }?["id"] as? String)
        let none = try await troupe("result", stream)
        #expect(none.status == 66 && none.stderr.contains("declares no result"), "\(none.stderr)")
    }

    /// `events --follow` ends when the run's process dies, and says so instead of leaving the reader to guess.
    @Test func followingSaysWhenTheOwnerDies() async throws {
        let process = try await start(["run", "counting", "--param", "count=100000000", "--param", "interval=200ms"])
        let run = try await liveRun()
        let follower = try await start(["events", run, "--follow"])
        try await eventually("the follower prints") { processLogs().contains("relay#1") }
        kill(process.processIdentifier, SIGKILL)
        await waitForExit(follower)
        #expect(follower.terminationStatus == 0)
        #expect(processLogs().contains("run \(run) has no live process (crashed)"), "\(processLogs())")
    }

    /// `events --follow` without a run follows every run from now on, runs started later included, each line with
    /// its run's id; what was logged before it started is not repeated.
    @Test func followingWithoutARunFollowsEveryRun() async throws {
        #expect(try await troupe("run", "demo").status == 0)
        let before = try #require(try await runs().first?["id"] as? String)
        let follower = try await start(["events", "--follow", "--kind", "crashed"])
        defer { if follower.isRunning { kill(follower.processIdentifier, SIGKILL) } }
        var later: [String] = []
        // The follower starts reading at some moment: demos are run until one started after it shows.
        try await eventually("a later run's crash is followed") {
            #expect(try await troupe("run", "demo").status == 0)
            later.append(try #require(try await runs().first?["id"] as? String))
            return later.contains { processLogs().contains("\($0)   ") && processLogs().contains("transformer#1    crashed") }
        }
        #expect(!processLogs().contains(before), "\(processLogs())")
        #expect(!processLogs().contains("restarting"), "--kind crashed printed other events")
        kill(follower.processIdentifier, SIGTERM)
        await waitForExit(follower)
        #expect(try await troupe("events").status == 64)
    }

    /// A detached run keeps the options it was started with: `--retain 10` keeps ten checkpoints per agent in the
    /// background process too (it was dropped: the child kept the default three).
    @Test func aDetachedRunKeepsItsRetention() async throws {
        let started = try #require(try await json("run", "counting", "--param", "count=100000000", "--param", "interval=100ms", "--retain", "10", "--detach") as? [String: String])
        let run = try #require(started["run"])
        try await eventually("ten checkpoints kept") { (try await json("checkpoints", run, "counter") as? [Any])?.count ?? 0 >= 10 }
        _ = try await troupe("cancel", run)
    }

    /// After a crash of every process (a reboot), `resume --all` brings back each crashed run in a background
    /// process of its own, and returns once each is driven; `resume RUN --detach` does it for one run. A run and
    /// --all together, or neither, is a usage error.
    @Test func resumeAllBringsBackEveryCrashedRunDetached() async throws {
        var pids: [String: Int32] = [:]
        for _ in 0..<2 {
            let started = try await json("run", "counting", "--param", "count=100000000", "--param", "interval=500ms", "--detach")
            let document = try #require(started as? [String: String])
            pids[try #require(document["run"])] = Int32(try #require(document["pid"].flatMap(Int32.init)))
        }
        for pid in pids.values {
            kill(pid, SIGKILL)
        }
        try await eventually("both runs crashed") { try await runs().filter { ($0["status"] as? String) == "crashed" }.count == 2 }
        #expect(try await troupe("resume").status == 64)
        #expect(try await troupe("resume", pids.keys.first!, "--all").status == 64)

        let resumed = try #require(try await json("resume", "--all") as? [[String: String]])
        #expect(Set(resumed.compactMap { $0["run"] }) == Set(pids.keys), "\(resumed)")
        for run in try await runs() {
            #expect(isDriven(run), "\(run)")
            let pid = ((run["owner"] as? [String: Any])?["pid"] as? Int).map(Int32.init)
            #expect(pid != nil && pid != pids[run["id"] as? String ?? ""], "run \(run) is driven by its old process")
        }
        let none = try await troupe("resume", "--all")
        #expect(none.status == 0 && none.stdout.contains("no crashed run"), "\(none.stdout) \(none.stderr)")

        // One run, by the beginning of its id.
        let one = try #require(pids.keys.sorted().first)
        let owner = try #require(((try await runs().first { $0["id"] as? String == one }?["owner"]) as? [String: Any])?["pid"] as? Int)
        kill(Int32(owner), SIGKILL)
        try await eventually("the run crashed again") { try await runs().contains { $0["id"] as? String == one && $0["status"] as? String == "crashed" } }
        let again = try await troupe("resume", String(one.prefix(9)), "--detach")
        #expect(again.status == 0 && again.stdout.contains("resumed run \(one) in the background"), "\(again.stdout) \(again.stderr)")
        #expect(isDriven(try await runs().first { $0["id"] as? String == one }))
        for run in pids.keys { _ = try await troupe("cancel", run) }
        try await eventually("both runs cancelled") { try await runs().allSatisfy { ($0["status"] as? String) == "cancelled" } }
    }

    @Test func rmDeletesEndedRunsWithEverythingTheyStoredAndRefusesLiveOnes() async throws {
        try await endedRuns([("run-a", .completed), ("run-b", .stopped)])
        let missing = try await troupe("rm", "run-b", "run-nope")
        #expect(missing.status == 66, "\(missing.stderr)")
        #expect(try await runs().map { $0["id"] as? String }.contains("run-b"), "all or nothing")
        let removed = try await troupe("rm", "run-a", "run-a")
        #expect(removed.status == 0, "\(removed.stderr)")
        #expect(try await runs().map { $0["id"] as? String } == ["run-b"])
        #expect(try await troupe("checkpoints", "run-a", "counter").status == 66)

        let process = try await start(["run", "counting", "--param", "count=100000000", "--param", "interval=500ms"])
        let live = try await liveRun()
        let refused = try await troupe("rm", live)
        #expect(refused.status == 1, "\(refused.stderr)")
        #expect(refused.stderr.contains("troupe cancel"), "\(refused.stderr)")
        #expect(try await runs().contains { $0["id"] as? String == live })
        _ = try await troupe("cancel", live)
        await waitForExit(process)
        let check = try await troupe("db", "check")
        #expect(check.stdout.contains("integrity   ok"))
    }

    /// Heads that no longer add up to their run's sum (a stale page of them): every read that decides something
    /// refuses with exit 65 and names `troupe db check`, which lists the run; other runs stay readable.
    @Test func checkpointHeadsThatDisagreeWithTheirRunAreRefusedEverywhere() async throws {
        try await endedRuns([("run-a", .stopped), ("run-b", .stopped)])
        let connection = try Connection(path: database)
        try connection.execute("UPDATE runs SET head_sum = head_sum + 4 WHERE id = 'run-a'")
        let listing = try await troupe("checkpoints", "run-a", "counter")
        #expect(listing.status == 65, "\(listing.stdout) \(listing.stderr)")
        #expect(listing.stderr.contains("troupe db check"), "\(listing.stderr)")
        let resume = try await troupe("resume", "run-a")
        #expect(resume.status == 65, "\(resume.stdout) \(resume.stderr)")
        #expect(try await troupe("checkpoints", "run-b", "counter").status == 0)
        let check = try await troupe("db", "check")
        #expect(check.status == 65)
        #expect(check.stdout.contains("run run-a: its checkpoint heads add up to 1, but its commits recorded 5"), "\(check.stdout)")
        #expect(!check.stdout.contains("run run-b"), "\(check.stdout)")
    }

    @Test func aPausedRunKeepsItsLease() async throws {
        let process = try await start(["run", "counting", "--param", "count=100000000", "--param", "interval=500ms"])
        defer { if process.isRunning { process.terminate() } }
        let run = try await liveRun()
        let pause = try await troupe("pause", run)
        #expect(pause.status == 0, "\(pause.stderr)")
        let intruder = try await troupe("resume", run)
        #expect(intruder.status == 1, "a paused run was taken over from its live owner: \(intruder.stdout)")
        #expect(intruder.stderr.contains("process \(process.processIdentifier)"), "\(intruder.stderr)")
        let unpause = try await troupe("unpause", run)
        #expect(unpause.stdout.contains("resumed"), "\(unpause.stdout) \(unpause.stderr)")
        _ = try await troupe("cancel", run)
        await waitForExit(process)
    }

    @Test func aPausedRunThatCrashesComesBackPausedAndPausingIsNoRestart() async throws {
        let process = try await start(["run", "counting", "--param", "count=100000000", "--param", "interval=500ms"])
        defer { if process.isRunning { process.terminate() } }
        let run = try await liveRun()
        #expect(try await troupe("pause", run).stdout.contains("paused 3 agents"))
        #expect(try await troupe("unpause", run).stdout.contains("resumed 3 agents"))
        #expect(try await troupe("pause", run).stdout.contains("paused 3 agents"))
        kill(process.processIdentifier, SIGKILL)
        await waitForExit(process)
        try await eventually("the run shown crashed") { !isDriven(try await runs().first) }

        let second = try await start(["resume", run])
        defer { if second.isRunning { second.terminate() } }
        // Up to 90 s: in the suite's loaded first two minutes, the resume, the pause it applies, the tree it
        // publishes and each poll's two `troupe` processes together once took more than the default 40 s.
        try await eventually("the resumed run paused, its agents stopped", within: 90) {
            guard let summary = try await runs().first, isDriven(summary), summary["status"] as? String == "paused" else {
                return false
            }
            let tree = try await json("tree", run) as? [[String: Any]] ?? []
            return tree.count == 3 && tree.allSatisfy { $0["status"] as? String == "stopped" }
        }
        // Pause and unpause stop and start agents; neither is a restart.
        #expect(try await runs().first?["restarts"] as? Int == 0)
        let unpause = try await troupe("unpause", run)
        #expect(unpause.stdout.contains("resumed 3 agents"), "\(unpause.stdout) \(unpause.stderr)")
        #expect(try await runs().first?["status"] as? String == "running")
        _ = try await troupe("cancel", run)
        await waitForExit(second)
    }

    @Test func pruneDeletesOldRunsByStatus() async throws {
        try await endedRuns([("run-done", .completed), ("run-stop", .stopped), ("run-fail", .failed)])
        let dry = try await json("prune", "--runs-older-than", "0m", "--status", "completed", "--status", "failed", "--dry-run") as? [String: Any]
        #expect(dry?["runs"] as? Int == 2)
        #expect(try await runs().count == 3)
        _ = try await troupe("prune", "--runs-older-than", "0m", "--status", "completed", "--status", "failed")
        #expect(try await runs().map { $0["id"] as? String } == ["run-stop"])
        #expect(try await troupe("prune", "--status", "stopped").status == 64)
        #expect(try await troupe("prune", "--runs-older-than", "0m", "--status", "bogus").status == 64)
    }

    @Test func pruneSaysWhatItWouldDeleteThenDeletesIt() async throws {
        let process = try await start(["run", "counting", "--param", "count=100000000", "--param", "interval=100ms", "--retain", "50"])
        let run = try await liveRun()
        try await eventually("many checkpoints") { (try await json("checkpoints", run, "counter") as? [Any])?.count ?? 0 > 20 }
        _ = try await troupe("cancel", run)
        await waitForExit(process)
        let kept = (try await json("checkpoints", run, "counter") as? [Any])?.count ?? 0
        let dry = try await json("prune", "--keep", "2", "--dry-run") as? [String: Any]
        #expect((dry?["checkpoints"] as? Int ?? 0) >= kept - 2)
        #expect((try await json("checkpoints", run, "counter") as? [Any])?.count == kept)
        _ = try await troupe("prune", "--keep", "2")
        #expect((try await json("checkpoints", run, "counter") as? [Any])?.count == 2)
        #expect((try await json("prune", "--keep", "2", "--dry-run") as? [String: Any])?["checkpoints"] as? Int == 0)
    }

    @Test func ctrlCStopsAForegroundRunGracefully() async throws {
        let process = try await start(["run", "counting", "--param", "interval=10ms"])
        let run = try await liveRun()
        kill(process.processIdentifier, SIGINT)
        await waitForExit(process)
        #expect(process.terminationStatus == 130)
        let summary = try await runs().first { $0["id"] as? String == run }
        #expect(summary?["status"] as? String == "stopped")
        #expect(!isDriven(summary))
    }

    @Test func sigtermStopsAForegroundRunGracefullyWithStatusZero() async throws {
        let process = try await start(["run", "counting", "--param", "interval=10ms"])
        let run = try await liveRun()
        kill(process.processIdentifier, SIGTERM)
        await waitForExit(process)
        #expect(process.terminationStatus == 0)
        let summary = try await runs().first { $0["id"] as? String == run }
        #expect(summary?["status"] as? String == "stopped")
    }

    @Test func badRunOptionsAreUsageErrors() async throws {
        let durability = try await troupe("run", "counting", "--durability", "bogus")
        #expect(durability.status == 64, "\(durability.stderr)")
        for id in ["", "../escaped", ".hidden", "a/b", String(repeating: "x", count: 65)] {
            let result = try await troupe("run", "counting", "--id", id, "--detach")
            #expect(result.status == 64, "--id '\(id)': \(result.stderr)")
        }
        let parent = (database as NSString).deletingLastPathComponent
        #expect(!FileManager.default.fileExists(atPath: (parent as NSString).deletingLastPathComponent + "/escaped.log"))
    }

    @Test func oneShotBlueprintsCompleteOfflineAndTheMarketMonitorResumes() async throws {
        let counting = try await troupe("run", "counting", "--param", "count=300")
        #expect(counting.status == 0, "\(counting.stderr)")
        #expect(counting.stdout.contains("completed"), "\(counting.stdout)")
        let batches = try await troupe("run", "batch-stream", "--param", "batches=20", "--param", "size=50")
        #expect(batches.status == 0, "\(batches.stderr)")
        #expect(batches.stdout.contains("completed"), "\(batches.stdout)")
        let fetch = try await troupe("run", "fetch-many", "--param", "count=30")
        #expect(fetch.status == 0, "\(fetch.stderr)")
        #expect(fetch.stdout.contains("completed"))
        let demo = try await troupe("run", "demo")
        #expect(demo.status == 0, "\(demo.stderr)")
        #expect(demo.stdout.contains("completed"), "\(demo.stdout)")
        let chat = try await troupe("run", "llm-chat", "--param", "budget=5")
        #expect(chat.status == 0, "\(chat.stderr)")
        let answered = try #require(await runs().first { $0["blueprint"] as? String == "llm-chat" }?["id"] as? String)
        let state = try await troupe("checkpoints", answered, "chat", "--show", "last")
        #expect(state.stdout.contains("\"tokens\":5"))

        let process = try await start(["run", "market-monitor", "--param", "interval=100ms"])
        var run = ""
        try await eventually("the monitor polling") {
            guard let found = try await runs().first(where: { $0["blueprint"] as? String == "market-monitor" && isDriven($0) }) else {
                return false
            }
            run = found["id"] as? String ?? ""
            // Five polls or more: under load, several polls may pass between two looks.
            let shown = try await troupe("checkpoints", run, "monitor", "--show", "last").stdout
            return shown.firstMatch(of: /"polls":(\d+)/).flatMap { Int($0.1) }.map { $0 >= 5 } ?? false
        }
        kill(process.processIdentifier, SIGKILL)
        await waitForExit(process)
        let killedAt = try await troupe("checkpoints", run, "monitor", "--show", "last").stdout
        let resumed = try await start(["resume", run])
        try await eventually("the monitor polling on from where it was") {
            try await troupe("checkpoints", run, "monitor", "--show", "last").stdout != killedAt
        }
        _ = try await troupe("cancel", run)
        await waitForExit(resumed)
        let events = try await troupe("events", run, "--agent", "monitor")
        // One start per process, and no poll counted twice: the epochs moved on, the poll count did too.
        #expect(events.stdout.components(separatedBy: "started").count - 1 == 2)
    }

    /// The monitor's sleep between polls is a durable timer: killed with SIGKILL while it waits and resumed before
    /// its deadline, it polls at the deadline it had — not at the resume, and not a whole interval after it. Times
    /// are the checkpoints' own, and the resume comes at least half way through the interval, so a loaded
    /// machine's lag in noticing the poll does not count.
    @Test func aMonitorKilledWhileItSleepsPollsAtItsOriginalDeadline() async throws {
        let interval = 20.0
        let process = try await start(["run", "market-monitor", "--param", "interval=20s", "--id", "run-timer"])
        /// The times of the monitor's checkpoints, one per poll, oldest first.
        func polls() async throws -> [Date] {
            let listed = try await troupe("checkpoints", "run-timer", "monitor", "--json")
            guard listed.status == 0 else { return [] }
            let rows = (try? JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]]) ?? []
            let format = ISO8601DateFormatter()
            format.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            return rows.compactMap { ($0["createdAt"] as? String).flatMap(format.date) }
        }
        try await eventually("the first poll") { try await !polls().isEmpty }
        kill(process.processIdentifier, SIGKILL)
        await waitForExit(process)
        // The last poll before the kill (the first, unless the machine was slow to notice it).
        let before = try await polls()
        let last = try #require(before.last)
        while Date() < last.addingTimeInterval(interval / 2) { try await Task.sleep(for: .milliseconds(20)) }
        let resumedAt = Date()
        let resumed = try await start(["resume", "run-timer"])
        try await eventually("the next poll") { try await polls().count > before.count }
        let next = try #require(try await polls().dropFirst(before.count).first)
        _ = try await troupe("cancel", "run-timer")
        await waitForExit(resumed)
        // Not a whole interval after the resume: the timer did not start over.
        #expect(
            next.timeIntervalSince(resumedAt) < interval - 1,
            "polled \(next.timeIntervalSince(resumedAt)) s after the resume: the timer started over"
        )
        // And, when the resume came before the deadline (a loaded machine may notice the poll late), not before it.
        if resumedAt < last.addingTimeInterval(interval - 2) {
            #expect(next.timeIntervalSince(last) >= interval - 0.1, "polled \(next.timeIntervalSince(last)) s after the last poll: the resume did not wait")
        }
    }

    /// Human approval that survives kill -9: the writer waits for a signal; `tree` and `describe` say so; the
    /// process is killed; the signal is sent while no process drives the run; the resume sends the answer once.
    @Test func anApprovalWaitSurvivesKill9AndTheSignalIsTakenOnce() async throws {
        let process = try await start(["run", "approval", "--id", "run-approve"])
        func writer() async throws -> [String: Any]? {
            let tree = try await troupe("tree", "run-approve", "--json")
            guard tree.status == 0 else { return nil }
            return (try? JSONSerialization.jsonObject(with: Data(tree.stdout.utf8)) as? [[String: Any]])?.first
        }
        try await eventually("the writer waiting for approval") {
            ((try await writer())?["waiting"] as? [String: Any])?["what"] as? String == "signal 'approve'"
        }
        let described = try await troupe("describe", "run-approve", "writer")
        #expect(described.stdout.contains("for signal 'approve' since"), "\(described.stdout)")
        let listed = try await troupe("ps")
        #expect(listed.stdout.contains("running, 1 waiting"), "\(listed.stdout)")
        let rows = try await runs()
        let waiting = (rows.first { $0["id"] as? String == "run-approve" }?["waiting"] as? [[String: Any]]) ?? []
        #expect(waiting.first?["agent"] as? String == "writer" && waiting.first?["what"] as? String == "signal 'approve'", "\(waiting)")
        kill(process.processIdentifier, SIGKILL)
        await waitForExit(process)

        #expect(try await troupe("signal", "run-approve", "writer", "approve", "{not json").status == 65)
        #expect(try await troupe("signal", "run-approve", "writer", "appro ve", "{}").status == 64)
        let queued = try await troupe("signal", "run-approve", "writer", "approve", #"{"approve":true,"note":"ship it"}"#)
        #expect(queued.status == 0 && queued.stdout.contains("queued"), "\(queued.stdout) \(queued.stderr)")
        let resumed = try await troupe("resume", "run-approve")
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let result = try await troupe("result", "run-approve")
        let state = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        #expect(state?["outcome"] as? String == "sent" && state?["sent"] as? Int == 1, "\(result.stdout)")
        #expect(state?["note"] as? String == "ship it")
    }
}

