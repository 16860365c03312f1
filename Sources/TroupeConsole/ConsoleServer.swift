import ArgumentParser
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import ServiceLifecycle
import Troupe
import TroupeCLI

/// The console's routes: the page, its assets, the JSON API and `/metrics`, behind ``Gate``.
struct ConsoleServer: Sendable {
    let store: any OperatorStore
    let global: GlobalOptions
    let readOnly: Bool
    let token: String?
    let metrics: ConsoleMetrics

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: Gate(token: token, readOnly: readOnly, metrics: metrics))
        router.get("/") { _, _ in Self.asset(PackageResources.index_html, type: "text/html; charset=utf-8") }
        router.get("/app.js") { _, _ in Self.asset(PackageResources.app_js, type: "text/javascript; charset=utf-8") }
        router.get("/style.css") { _, _ in Self.asset(PackageResources.style_css, type: "text/css; charset=utf-8") }
        router.get("/login") { _, _ in Self.asset(PackageResources.login_html, type: "text/html; charset=utf-8") }
        router.post("/login") { request, context in try await login(request, context) }
        router.get("/metrics") { _, _ in
            await metrics.refresh(from: store)
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: metrics.exposition()))
            )
        }

        let api = router.group("api")
        api.get("console") { _, _ in
            Self.json(["readOnly": readOnly ? "true" : "false", "version": TroupeRelease.version, "database": global.databaseShown])
        }
        api.get("runs") { request, _ in await respond { try await runs(request) } }
        api.get("runs/{run}") { _, context in
            await respond { try await Documents.status(of: try context.parameters.require("run"), in: store) }
        }
        api.get("runs/{run}/tree") { _, context in
            await respond { try await Documents.tree(of: try await resolve(context), in: store) }
        }
        api.get("runs/{run}/events") { request, context in await respond { try await events(request, context) } }
        api.get("runs/{run}/timeline") { _, context in
            await respond { try await Timeline.build(of: try await resolve(context), in: store) }
        }
        api.get("runs/{run}/stream") { request, context in try await stream(request, context) }
        api.get("runs/{run}/dead-letters") { _, context in
            await respond { try await store.deadLetters(of: try await resolve(context)) }
        }
        api.get("runs/{run}/agents/{agent}") { request, context in
            await respond {
                let history = request.uri.queryParameters.get("history", as: Int.self) ?? 20
                return try await Documents.describe(
                    try context.parameters.require("agent"), of: try context.parameters.require("run"),
                    history: max(0, history), in: store
                )
            }
        }
        api.get("runs/{run}/agents/{agent}/checkpoints") { _, context in
            await respond { try await checkpoints(context) }
        }
        api.get("runs/{run}/agents/{agent}/checkpoints/{sequence}") { _, context in
            await respond { try await checkpoint(context) }
        }

        // Actions: the control queue, as the CLI's verbs.
        api.post("runs/{run}/cancel") { request, context in
            await respond {
                let grace = request.uri.queryParameters.get("grace", as: Double.self) ?? 10
                guard grace >= 0, grace <= 315_360_000 else { throw ValidationError("grace takes 0 to 10 years in seconds, not \(grace)") }
                return try await command(.cancel(grace: .milliseconds(Int64(grace * 1000))), request, context)
            }
        }
        api.post("runs/{run}/pause") { request, context in await respond { try await command(.pause, request, context) } }
        api.post("runs/{run}/unpause") { request, context in await respond { try await command(.unpause, request, context) } }
        api.post("runs/{run}/resume") { _, context in
            await respond {
                let run = try context.parameters.require("run")
                let (pid, log) = try await Documents.resumeDetached(run, global: global)
                return ["run": try await resolve(context).rawValue, "pid": String(pid), "log": log, "status": "resumed"]
            }
        }
        api.post("runs/{run}/agents/{agent}/restart") { request, context in
            await respond {
                let fresh = request.uri.queryParameters.get("fresh") == "true"
                return try await command(.restart(agent: try context.parameters.require("agent"), fresh: fresh), request, context)
            }
        }
        api.post("runs/{run}/agents/{agent}/stop") { request, context in
            await respond { try await command(.stop(agent: try context.parameters.require("agent")), request, context) }
        }
        // A message or a signal: the request's body is its JSON, as `troupe send` and `troupe signal` take it.
        api.post("runs/{run}/agents/{agent}/send") { request, context in
            await respond {
                let message = try await Self.body(request)
                try OperatorInput.requireJSON(message, "the message (the request's body)", example: "POST …/send with body {\"work\":{}}")
                return try await command(.send(agent: try context.parameters.require("agent"), message: message), request, context)
            }
        }
        api.post("runs/{run}/agents/{agent}/signal/{name}") { request, context in
            await respond {
                let name = try context.parameters.require("name")
                if let problem = OperatorInput.signalNameProblem(name) { throw ValidationError(problem) }
                let value = try await Self.body(request)
                try OperatorInput.requireJSON(value, "the signal's value (the request's body)", example: "POST …/signal/approve with body {\"approve\":true}")
                return try await command(.signal(agent: try context.parameters.require("agent"), name: name, value: value), request, context)
            }
        }
        api.post("runs/{run}/dead-letters/requeue") { request, context in
            await respond { try await deadLetters(requeue: true, request, context) }
        }
        api.post("runs/{run}/dead-letters/purge") { request, context in
            await respond { try await deadLetters(requeue: false, request, context) }
        }
        api.post("runs/{run}/fork") { request, context in
            await respond {
                let run = try await resolve(context)
                guard let agent = request.uri.queryParameters.get("agent"),
                    let sequence = request.uri.queryParameters.get("sequence", as: UInt64.self)
                else { throw ValidationError("fork takes ?agent=NAME&sequence=SEQ (a checkpoint of that agent)") }
                let newRun = RunID.random()
                try await store.fork(AgentID(run: run, name: agent), sequence: sequence, as: newRun)
                return ["run": newRun.rawValue, "from": run.rawValue, "agent": agent, "sequence": String(sequence)]
            }
        }
        return router
    }

    // MARK: Reads

    private func resolve(_ context: BasicRequestContext) async throws -> RunID {
        RunID(try await resolveRun(try context.parameters.require("run"), in: store))
    }

    /// `/api/runs?status=…&blueprint=…&limit=N`: `troupe ps --json` with the same filters.
    private func runs(_ request: Request) async throws -> [RunSummary] {
        let query = request.uri.queryParameters
        let statuses = try query.getAll("status").flatMap { $0.split(separator: ",") }.map { word in
            guard let status = RunStatus(rawValue: String(word)) else {
                throw ValidationError("status '\(word)' is not a run status; use one of \(RunStatus.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return status
        }
        let blueprints = query.getAll("blueprint").filter { !$0.isEmpty }
        var runs = try await store.runs().filter {
            (statuses.isEmpty || statuses.contains($0.status)) && (blueprints.isEmpty || blueprints.contains($0.blueprint))
        }
        if let limit = query.get("limit", as: Int.self), limit > 0 { runs = Array(runs.prefix(limit)) }
        return runs
    }

    /// `/api/runs/RUN/events?since=SEQ&agent=NAME&kind=K&limit=N`: `troupe events --json` lines, as an array.
    private func events(_ request: Request, _ context: BasicRequestContext) async throws -> [EventLine] {
        let run = try await resolve(context)
        let query = request.uri.queryParameters
        let since = query.get("since", as: Int64.self) ?? 0
        let limit = min(max(query.get("limit", as: Int.self) ?? 500, 1), 10_000)
        let agent = query.get("agent").flatMap { $0.isEmpty ? nil : $0 }
        let kinds = Set(query.getAll("kind").flatMap { $0.split(separator: ",").map(String.init) })
        for kind in kinds where !Event.Kind.names.contains(kind) {
            throw ValidationError("kind '\(kind)' is not an event; use one of \(Event.Kind.names.joined(separator: ", "))")
        }
        if query.get("tail") != nil {
            // The newest `limit` events that pass the filter.
            let page = try await store.lastEvents(of: run, count: kinds.isEmpty ? limit : 50_000, agent: agent)
            return page.filter { kinds.isEmpty || kinds.contains($0.event) }.suffix(limit).map(EventLine.init)
        }
        var kept: [EventRecord] = []
        var after = since
        while kept.count < limit {
            let page = try await store.events(of: run, since: after, agent: agent, limit: 5000)
            kept += page.filter { kinds.isEmpty || kinds.contains($0.event) }
            guard page.count == 5000, let last = page.last else { break }
            after = last.sequence
        }
        return kept.prefix(limit).map(EventLine.init)
    }

    private func checkpoints(_ context: BasicRequestContext) async throws -> [CheckpointRecord] {
        let run = try await resolve(context)
        let agent = try context.parameters.require("agent")
        guard try await store.agents(of: run).contains(where: { $0.name == agent }) else {
            throw TroupeError(.unknownChild, "run \(run) has no checkpointed agent '\(agent)'.")
        }
        return try await store.checkpointHistory(of: AgentID(run: run, name: agent))
    }

    /// One checkpoint's state, as `troupe checkpoints RUN AGENT --show SEQ` prints it (pretty when JSON).
    private func checkpoint(_ context: BasicRequestContext) async throws -> [String: String] {
        let run = try await resolve(context)
        let agent = try context.parameters.require("agent")
        let wanted = try context.parameters.require("sequence")
        let all = try await store.checkpoints(of: AgentID(run: run, name: agent))
        guard let found = wanted == "last" ? all.last : all.first(where: { String($0.sequence) == wanted }) else {
            throw TroupeError(.unknownChild, "run \(run) keeps no checkpoint #\(wanted) of '\(agent)'.")
        }
        return [
            "sequence": String(found.sequence), "state": Documents.stateText(found.state) ?? "(\(found.state.count) bytes, not text)",
        ]
    }

    // MARK: Actions

    private func command(_ action: OperatorCommand.Action, _ request: Request, _ context: BasicRequestContext) async throws -> Documents.CommandReport {
        try await Documents.command(
            action, for: try context.parameters.require("run"), in: store, origin: origin(request), wait: .seconds(10)
        )
    }

    /// A request's body as text, up to 1 MiB (a message larger than that is refused).
    private static func body(_ request: Request) async throws -> String {
        do {
            return String(buffer: try await request.body.collect(upTo: 1 << 20))
        } catch {
            throw ValidationError("the request's body is over 1 MiB; a message or signal value must be smaller")
        }
    }

    /// Who asks: the console, on behalf of whoever started it; why: `?reason=`.
    private func origin(_ request: Request) -> OperatorCommand.Origin {
        Documents.origin("console", reason: request.uri.queryParameters.get("reason"))
    }

    private func deadLetters(requeue: Bool, _ request: Request, _ context: BasicRequestContext) async throws -> [String: String] {
        let run = try await resolve(context)
        let ids = try request.uri.queryParameters.getAll("id").map { text in
            guard let id = Int64(text) else { throw ValidationError("id takes a dead letter's number, not '\(text)'") }
            return id
        }
        if !ids.isEmpty {
            let known = Set(try await store.deadLetters(of: run).map(\.id))
            let missing = ids.filter { !known.contains($0) }
            guard missing.isEmpty else {
                throw MissingInput(description: "run \(run) has no dead letter \(missing.map { "#\($0)" }.joined(separator: ", ")); nothing was changed.")
            }
        }
        if !requeue {
            return ["purged": String(try await store.purgeDeadLetters(of: run, ids: ids.isEmpty ? nil : ids))]
        }
        if try await store.run(run).isDriven {
            let report = try await Documents.command(
                .requeue(ids: ids.isEmpty ? nil : ids), for: run.rawValue, in: store, origin: origin(request), wait: .seconds(10)
            )
            return ["status": report.status, "outcome": report.outcome ?? "", "result": report.result ?? ""]
        }
        return ["requeued": String(try await store.requeueDeadLetters(of: run, ids: ids.isEmpty ? nil : ids).count)]
    }

    private func login(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let body = try await request.body.collect(upTo: 4096)
        let form = String(buffer: body)
        let given = form.split(separator: "&").compactMap { pair -> String? in
            let parts = pair.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, parts[0] == "token" else { return nil }
            return String(parts[1]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding
        }.first
        guard let token, let given, Gate.same(given, token) else {
            return Response(status: .seeOther, headers: [.location: "/login?failed=1"])
        }
        return Response(
            status: .seeOther,
            headers: [.location: "/", .setCookie: "\(Gate.cookie)=\(token); Path=/; HttpOnly; SameSite=Strict"]
        )
    }

    // MARK: Live

    /// Server-sent events for one run: `run` (its `status` document) and `tree` when they change, and `events`
    /// (new event lines, each batch's last sequence as the event id, so a reconnecting browser carries on). Woken by
    /// the store's event hints and once a second; ends after ten minutes (the browser reconnects) or at shutdown.
    private func stream(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let run = try await resolve(context)
        let store = store
        var start = request.uri.queryParameters.get("since", as: Int64.self) ?? 0
        if let last = request.headers[HTTPField.Name("Last-Event-ID")!].flatMap({ Int64($0) }) { start = last }
        let since = start
        return Response(
            status: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-store"],
            body: ResponseBody { writer in
                let (wake, wakeUp) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for await _ in store.eventHints(of: run) { wakeUp.yield() }
                    }
                    group.addTask {
                        while true {
                            try await Task.sleep(for: .seconds(1))
                            wakeUp.yield()
                        }
                    }
                    group.addTask {
                        try await Task.sleep(for: .seconds(600))
                        wakeUp.finish()
                    }
                    group.addTask {
                        try? await gracefulShutdown()
                        wakeUp.finish()
                    }
                    var last = since
                    var sentRun = ""
                    var sentTree = ""
                    var quiet = 0
                    try await writer.write(ByteBuffer(string: "retry: 1000\n\n"))
                    for await _ in wake {
                        var out = ""
                        let report = jsonText(try await Documents.status(of: run.rawValue, in: store))
                        if report != sentRun {
                            out += "event: run\ndata: \(report)\n\n"
                            sentRun = report
                        }
                        let tree = jsonText(try await Documents.tree(of: run, in: store))
                        if tree != sentTree {
                            out += "event: tree\ndata: \(tree)\n\n"
                            sentTree = tree
                        }
                        let events = try await store.events(of: run, since: last, agent: nil, limit: 1000)
                        if let newest = events.last?.sequence {
                            out += "id: \(newest)\nevent: events\ndata: \(jsonText(events.map(EventLine.init)))\n\n"
                            last = newest
                        }
                        quiet = out.isEmpty ? quiet + 1 : 0
                        if quiet >= 15 {
                            out = ": still here\n\n"
                            quiet = 0
                        }
                        if !out.isEmpty { try await writer.write(ByteBuffer(string: out)) }
                    }
                    group.cancelAll()
                }
                try await writer.finish(nil)
            }
        )
    }

    // MARK: Responses

    static func asset(_ bytes: [UInt8], type: String) -> Response {
        Response(
            status: .ok,
            headers: [.contentType: type, .cacheControl: "no-cache", .init("X-Content-Type-Options")!: "nosniff"],
            body: .init(byteBuffer: ByteBuffer(bytes: bytes))
        )
    }

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(string: jsonText(value) + "\n"))
        )
    }

    /// The document `body` builds, or the error as `{"error": …, "exitCode": …}` with the HTTP status that matches
    /// the CLI's exit code: 400 usage, 422 bad data, 404 not found, 409 not running, 503 busy, 500 anything else.
    private func respond(_ body: () async throws -> some Encodable) async -> Response {
        do {
            return Self.json(try await body())
        } catch {
            return Self.failure(error)
        }
    }

    static func failure(_ error: any Error) -> Response {
        let code = TroupeCommand.exitCode(for: error).rawValue
        var status: HTTPResponse.Status =
            switch code {
            case 64: .badRequest
            case 65: .unprocessableContent
            case 66: .notFound
            case 75: .serviceUnavailable
            default: .internalServerError
            }
        if let error = error as? TroupeError, error.code == .notRunning { status = .conflict }
        let message = (error as? ValidationError)?.message ?? "\(error)"
        return json(ErrorDocument(error: message, exitCode: code), status: status)
    }

    struct ErrorDocument: Encodable {
        var error: String
        var exitCode: Int32
    }
}
