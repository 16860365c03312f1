import Foundation
import Glibc
import Testing
import TroupeHTTP
import TroupeTestSupport

/// `troupe serve`'s JSON API, through HTTP against the real binary: its documents are the CLI's `--json`
/// documents, actions go through the control queue, and the token and read-only switches hold.
@Suite("Console API", .serialized, .timeLimit(.minutes(3)))
struct ConsoleAPITests {
    /// `value` without the keys that change from one read to the next (a live owner's heartbeat).
    func stable(_ value: Any) -> Any {
        if let object = value as? [String: Any] {
            return object.filter { $0.key != "heartbeatAt" && $0.key != "mailboxAt" }.mapValues(stable)
        }
        if let array = value as? [Any] { return array.map(stable) }
        return value
    }

    func same(_ a: Any, _ b: Any) -> Bool {
        NSDictionary(dictionary: ["v": stable(a)]).isEqual(to: ["v": stable(b)])
    }

    @Test func theAPIServesTheCLIsDocuments() async throws {
        let op = try Operator()
        let (run, pid) = try await op.start("fleet", "workers=2")
        defer { kill(pid, SIGKILL) }
        let console = try await Console(op)
        // The tree is published once the run has started its agents.
        try await op.eventually("the run's tree lists its workers") {
            ((try await console.json("/api/runs/\(run)/tree") as? [[String: Any]])?.first?["children"] as? [Any])?.count == 2
        }
        #expect(same(try await console.json("/api/runs"), try await op.json("ps")))
        #expect(same(try await console.json("/api/runs/\(run)"), try await op.json("status", run)))
        #expect(same(try await console.json("/api/runs/\(run)/tree"), try await op.json("tree", run)))
        #expect(same(try await console.json("/api/runs/\(run)/agents/worker-0"), try await op.json("describe", run, "worker-0")))
        #expect(same(try await console.json("/api/runs/\(run)/dead-letters"), try await op.json("dead-letters", run)))
        // A prefix of the run's id works as in the CLI.
        let byPrefix = try #require(try await console.json("/api/runs/\(run.prefix(8))") as? [String: Any])
        #expect((byPrefix["run"] as? [String: Any])?["id"] as? String == run)
        // Filters as `ps --status/--blueprint`.
        #expect((try await console.json("/api/runs?status=completed") as? [Any])?.isEmpty == true)
        #expect((try await console.json("/api/runs?blueprint=fleet&status=running") as? [Any])?.count == 1)

        // Errors: the HTTP status matches the CLI's exit code.
        let unknown = try await console.request("/api/runs/run-nothere")
        #expect(unknown.status == 404, "\(unknown.text)")
        let noAgent = try await console.request("/api/runs/\(run)/agents/nobody")
        #expect(noAgent.status == 404 && noAgent.text.contains("has no agent 'nobody'"), "\(noAgent.text)")
        let badStatus = try await console.request("/api/runs?status=sleeping")
        #expect(badStatus.status == 400 && badStatus.text.contains("not a run status"), "\(badStatus.text)")

        // The page and its assets are served from the binary.
        let page = try await console.request("/")
        #expect(page.status == 200 && page.text.contains("<script src=\"/app.js\">"))
        #expect(try await console.request("/app.js").text.contains("EventSource"))
        await console.stop()
    }

    /// A `fleet` run of two workers, driven by its own process, and a console on its database.
    func drivenFleet() async throws -> (Operator, run: String, pid: pid_t, Console) {
        let op = try Operator()
        let (run, pid) = try await op.start("fleet", "workers=2")
        do {
            let console = try await Console(op)
            try await op.eventually("the run is driven") {
                ((try await console.json("/api/runs/\(run)") as? [String: Any])?["run"] as? [String: Any])?["status"] as? String == "running"
            }
            return (op, run, pid, console)
        } catch {
            kill(pid, SIGKILL)
            throw error
        }
    }

    @Test func actionsGoThroughTheControlQueue() async throws {
        let (op, run, pid, console) = try await drivenFleet()
        defer { kill(pid, SIGKILL) }
        // Without the console's header an action is refused: another web page cannot post one.
        let forged = try await console.request("/api/runs/\(run)/cancel", method: "POST")
        #expect(forged.status == 403, "\(forged.text)")
        // Restart one agent, then the whole run is cancelled: each answered by the live process.
        let restart = try await console.act("/api/runs/\(run)/agents/worker-1/restart")
        #expect(restart.status == 200 && restart.text.contains("\"status\":\"applied\""), "\(restart.text)")
        let unknownAgent = try await console.act("/api/runs/\(run)/agents/nobody/restart")
        #expect(unknownAgent.status == 404, "\(unknownAgent.text)")
        let cancel = try await console.act("/api/runs/\(run)/cancel?grace=5")
        #expect(cancel.status == 200 && cancel.text.contains("\"outcome\":\"applied\""), "\(cancel.text)")
        try await op.eventually("the run is cancelled") {
            ((try await op.json("status", run) as? [String: Any])?["run"] as? [String: Any])?["status"] as? String == "cancelled"
        }
        // Cancelling an ended run is a conflict, as the CLI's `cancel` refuses it.
        let again = try await console.act("/api/runs/\(run)/cancel")
        #expect(again.status == 409, "\(again.text)")
        // The command shows in the run's document, as in `troupe status`.
        let commands = try #require((try await console.json("/api/runs/\(run)") as? [String: Any])?["commands"] as? [[String: Any]])
        #expect(commands.count == 2)
        await console.stop()
    }

    /// `troupe send` and `troupe signal` through the API: the body is the JSON, checked as the CLI checks it.
    @Test func messagesAndSignalsGoThroughTheControlQueue() async throws {
        let (op, run, pid, console) = try await drivenFleet()
        defer { kill(pid, SIGKILL) }
        let sent = try await console.act("/api/runs/\(run)/agents/worker-1/send?reason=api", body: #"{"work":{}}"#)
        #expect(sent.status == 200 && sent.text.contains("\"status\":\"applied\""), "\(sent.text)")
        try await op.eventually("worker-1 to handle it") {
            let shown = try await op.json("checkpoints", run, "worker-1", "--show", "last")
            return ((shown as? [String: Any])?["state"] as? [String: Any])?["handled"] as? Int == 1
        }
        let notJSON = try await console.act("/api/runs/\(run)/agents/worker-1/send", body: "{work")
        #expect(notJSON.status == 422 && notJSON.text.contains("not JSON"), "\(notJSON.text)")
        let wrongShape = try await console.act("/api/runs/\(run)/agents/worker-1/send", body: #"{"play":{}}"#)
        // The run's process refuses it, and the report says so, as `troupe send` does (which exits 1).
        #expect(wrongShape.text.contains("\"outcome\":\"failed\"") && wrongShape.text.contains("Fleet.Worker.Message"), "\(wrongShape.text)")
        let nobody = try await console.act("/api/runs/\(run)/agents/nobody/send", body: #"{"work":{}}"#)
        #expect(nobody.status == 404, "\(nobody.text)")

        let badName = try await console.act("/api/runs/\(run)/agents/worker-0/signal/no%20spaces", body: "true")
        #expect(badName.status == 400 && badName.text.contains("a signal's name"), "\(badName.text)")
        let signalled = try await console.act("/api/runs/\(run)/agents/worker-0/signal/approve", body: #"{"approve":true}"#)
        #expect(signalled.status == 200 && signalled.text.contains("\"status\":\"applied\""), "\(signalled.text)")
        // Both show in the run's document, with the reason given.
        let commands = try #require((try await console.json("/api/runs/\(run)") as? [String: Any])?["commands"] as? [[String: Any]])
        #expect(commands.contains { "\($0)".contains("api") }, "\(commands)")
        await console.stop()
    }

    @Test func aTokenGuardsTheConsoleAndReadOnlyRefusesActions() async throws {
        let op = try Operator()
        // Any address but loopback needs a token.
        let open = try await op.troupe("serve", "--host", "0.0.0.0", "--port", "0")
        #expect(open.status == 64 && open.stderr.contains("give a token"), "\(open.stderr)")
        let short = try await op.troupe("serve", "--token", "abc", "--port", "0")
        #expect(short.status == 64 && short.stderr.contains("too short"), "\(short.stderr)")

        let (run, pid) = try await op.start("fleet", "workers=1")
        defer { kill(pid, SIGKILL) }
        let token = "s3cret-token-for-tests"
        let guarded = try await Console(op, "--token", token)
        #expect(try await guarded.request("/api/runs").status == 401)
        #expect(try await guarded.request("/metrics").status == 401)
        let page = try await guarded.request("/")
        #expect(page.status == 303 && page.header("Location") == "/login")
        #expect(try await guarded.request("/api/runs", headers: [("Authorization", "Bearer \(token)")]).status == 200)
        #expect(try await guarded.request("/api/runs", headers: [("Authorization", "Bearer wrong-token-for-tests")]).status == 401)
        // The login form sets a cookie that then stands for the token.
        let wrong = try await guarded.request("/login", method: "POST", headers: [("Content-Type", "application/x-www-form-urlencoded")], body: Array("token=nope".utf8))
        #expect(wrong.status == 303 && wrong.header("Location") == "/login?failed=1")
        let login = try await guarded.request("/login", method: "POST", headers: [("Content-Type", "application/x-www-form-urlencoded")], body: Array("token=\(token)".utf8))
        let cookie = try #require(login.header("Set-Cookie"), "no cookie after logging in (\(login.status))")
        #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"))
        let pair = String(cookie.prefix { $0 != ";" })
        #expect(try await guarded.request("/api/runs/\(run)", headers: [("Cookie", pair)]).status == 200)
        await guarded.stop()

        let readOnly = try await Console(op, "--read-only")
        #expect((try await readOnly.json("/api/console") as? [String: Any])?["readOnly"] as? String == "true")
        let refused = try await readOnly.act("/api/runs/\(run)/cancel")
        #expect(refused.status == 403 && refused.text.contains("read-only"), "\(refused.text)")
        #expect(((try await op.json("status", run) as? [String: Any])?["commands"] as? [Any])?.isEmpty == true)
        await readOnly.stop()
    }

    @Test func metricsArePrometheusText() async throws {
        let op = try Operator()
        let (_, pid) = try await op.start("fleet", "workers=1")
        defer { kill(pid, SIGKILL) }
        let console = try await Console(op)
        _ = try await console.request("/api/runs")
        let metrics = try await console.request("/metrics")
        #expect(metrics.status == 200)
        #expect(metrics.header("Content-Type")?.hasPrefix("text/plain; version=0.0.4") == true)
        let text = metrics.text
        #expect(text.contains("# TYPE troupe_runs gauge"), "\(text)")
        #expect(text.contains("troupe_runs{status=\"running\"} 1"), "\(text)")
        #expect(text.contains("troupe_runs{status=\"completed\"} 0"), "\(text)")
        #expect(text.contains("troupe_console_requests_total{method=\"GET\",status=\"200\"}"), "\(text)")
        await console.stop()
    }

    @Test func aRunServesItsMetricsWithMetricsAddress() async throws {
        let op = try Operator()
        let process = op.process(["run", "counting", "--param", "count=1000000", "--param", "interval=100ms", "--metrics", "0"])
        let err = await makePipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try await launch(process)
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        // Its first line on standard error says where: "troupe: metrics on http://127.0.0.1:PORT/metrics".
        let line = await readLine(from: err.fileHandleForReading.fileDescriptor)
        let url = try #require(line.range(of: "http://").map { String(line[$0.lowerBound...]) }, "\(line)")
        let client = HTTPClient(configuration: .init(retry: .never))
        defer { client.shutdown() }
        var text = ""
        try await op.eventually("the run's metrics show handled messages and commits") {
            text = try await client.execute(.get(url)).text
            return text.contains("troupe_messages_handled_total{agent_type=\"Counter\"}")
                && !text.contains("troupe_messages_handled_total{agent_type=\"Counter\"} 0\n")
                && text.contains("troupe_commit_duration_seconds_count{store=\"sqlite\"}")
                && text.contains("troupe_mailbox_depth{agent_type=\"Counter\"}")
        }
        #expect(text.contains("troupe_messages_sent_total{agent_type=\"Relay\"}"), "\(text)")
        #expect(text.contains("troupe_handler_duration_seconds_bucket{agent_type=\"Relay\""), "\(text)")
        #expect(text.contains("troupe_lease_held{run=\""), "\(text)")
        // Ctrl-C stops it as any run (exit 130), and the endpoint with it.
        kill(process.processIdentifier, SIGINT)
        await waitForExit(process)
        #expect(process.terminationStatus == 130)
    }

    @Test func metricsNeedsAnAddress() async throws {
        let op = try Operator()
        let bad = try await op.troupe("run", "counting", "--metrics", "nine")
        #expect(bad.status == 64 && bad.stderr.contains("--metrics takes a port or host:port"), "\(bad.stderr)")
    }
}
