import Foundation
import Glibc
import Testing
import TroupeTestKit
import TroupeTestSupport

/// Headless Chromium, driven over the DevTools protocol by `browser.py` (next to this file): one page at a time.
final class Browser: Sendable {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("browser.py").path

    /// Whether this machine has Chromium; under CI (`CI` set, as `.ci/run` does) it must.
    static let available: Bool = {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").contains { access("\($0)/chromium", X_OK) == 0 }
    }()
    static let required = ProcessInfo.processInfo.environment["CI"].map { !$0.isEmpty } ?? false

    let process = Process()
    let input: Pipe
    let output: Pipe

    init() async throws {
        input = await makePipe()
        output = await makePipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Self.script]
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try await launch(process)
    }

    struct Failure: Error, CustomStringConvertible { var description: String }

    /// Sends one command; returns its value, or throws what the browser said.
    @discardableResult
    func send(_ command: [String: Any]) async throws -> Any? {
        let line = try JSONSerialization.data(withJSONObject: command) + Data("\n".utf8)
        try input.fileHandleForWriting.write(contentsOf: line)
        let reply = await readLine(from: output.fileHandleForReading.fileDescriptor)
        guard let document = try? JSONSerialization.jsonObject(with: Data(reply.utf8)) as? [String: Any] else {
            throw Failure(description: "the browser driver ended or said something else: '\(reply)'")
        }
        guard document["ok"] as? Bool == true else { throw Failure(description: document["error"] as? String ?? reply) }
        return document["value"]
    }

    func open(_ url: String) async throws { try await send(["op": "open", "url": url]) }

    /// Waits until `js` is truthy in the page (its value), for at most `seconds`.
    @discardableResult
    func wait(_ js: String, seconds: Double = 60) async throws -> Any? {
        try await send(["op": "wait", "js": js, "timeout": seconds])
    }

    func eval(_ js: String) async throws -> Any? { try await send(["op": "eval", "js": js]) }

    func click(_ selector: String) async throws { try await send(["op": "click", "selector": selector]) }

    func screenshot(_ path: String) async throws { try await send(["op": "screenshot", "path": path]) }

    func close() async {
        try? input.fileHandleForWriting.close()
        // It closes the browser (waiting up to 15 s for it, then killing what is left of it) and removes its
        // profile; a loaded machine once took more than 60 s over it.
        await waitForExit(process, within: .seconds(150))
    }
}

/// The console's views in a real browser against live runs: the tree updates live when an agent crashes, the
/// timeline shows the crash, the agent's page shows its dead letter and purges it, and the cancel button stops the
/// run. Skipped on a machine without Chromium, except under CI, where it must run.
@Suite(
    "Console in a browser",
    .serialized,
    .timeLimit(.minutes(6)),
    .enabled(if: Browser.available || Browser.required, "needs chromium (apt-get install chromium)")
)
struct ConsoleBrowserTests {
    @Test func theViewsFollowALiveRunAndItsButtonsAct() async throws {
        try #require(Browser.available, "CI runs the browser tests: install chromium (`.ci/run` does)")
        let op = try Operator()
        let (run, pid) = try await op.start("fleet", "workers=2")
        defer { kill(pid, SIGKILL) }
        let console = try await Console(op)
        let browser = try await Browser()
        do {
            // Runs: the run is listed, with its status.
            try await browser.open(console.base + "/#/")
            try await browser.wait("document.querySelector('#runs tr[data-run=\"\(run)\"][data-status=running]') !== null")

            // One run: the live tree. Mark the page, crash a worker from outside, and see the tree change without a
            // reload (the mark survives), the timeline draw the crash and the event log show it.
            try await browser.open(console.base + "/#/runs/\(run)")
            try await browser.wait("document.querySelectorAll('#tree li[data-agent^=\"worker-\"]').length === 2")
            #expect(try await browser.eval("document.querySelector('#tree li[data-agent=\"worker-1\"]').dataset.restarts") as? String == "0")
            _ = try await browser.eval("window.unreloaded = true")
            let sent = try await op.troupe("send", run, "worker-1", "{\"fail\":{\"reason\":\"browser test\"}}")
            #expect(sent.status == 0, "\(sent.stderr)")
            try await browser.wait("Number(document.querySelector('#tree li[data-agent=\"worker-1\"]').dataset.restarts) > 0")
            #expect(try await browser.eval("window.unreloaded === true") as? Bool == true, "the page reloaded instead of updating")
            try await browser.wait("document.querySelector('#tree li[data-agent=\"worker-1\"] .error')?.textContent.includes('told to fail: browser test')")
            try await browser.wait("document.querySelector('#timeline rect.span[data-agent=\"worker-1\"][data-ended=crashed]') !== null")
            try await browser.wait("document.querySelector('#events tr[data-event=crashed]') !== null")
            try await browser.wait("document.querySelector('#summary-dead-letters')?.textContent === '1'")

            // One agent: its dead letter, purged with the button; its checkpoints and state.
            try await browser.open(console.base + "/#/runs/\(run)/agents/worker-1")
            try await browser.wait("document.querySelector('#dead-letters tbody')?.textContent.includes('told to fail: browser test')")
            try await browser.wait("document.querySelector('#last-error')?.textContent.includes('told to fail')")
            try await browser.click("#purge")
            try await browser.wait("document.querySelector('#notice')?.textContent.includes('1 purged')")
            try await op.eventually("the dead letter is purged") {
                (try await op.json("dead-letters", run) as? [Any])?.isEmpty == true
            }

            // The run's cancel button stops it; the page follows.
            try await browser.open(console.base + "/#/runs/\(run)")
            try await browser.click("button[data-action=cancel]")
            try await browser.wait("document.querySelector('#run-status')?.textContent === 'cancelled'")
            let status = try await op.json("status", run) as? [String: Any]
            #expect((status?["run"] as? [String: Any])?["status"] as? String == "cancelled")
        } catch {
            try? await browser.screenshot(op.scratch.file("failure.png"))
            await browser.close()
            await console.stop()
            throw error
        }
        await browser.close()
        await console.stop()
    }
}
