import Testing
import Troupe
import TroupeTestKit
@testable import TroupeCLI

/// The status line of a foreground run on a terminal: the run, its age, what its agents do and its last error, in
/// 80 columns whatever the error's length; `paused` when paused; colour only when asked for.
struct StatusLineTests {
    let line = StatusLine(
        run: "run-6b2ffc94", elapsed: .seconds(65), running: 7, restarting: 0, failed: 1, restarts: 3, rate: 1234.5,
        checkpoints: 340, lastError: "transformer: " + String(repeating: "a very long error ", count: 20) + "\nsecond line"
    )

    @Test func itFitsEightyColumnsAndSaysWhatMatters() {
        let text = line.text(width: 80, colour: false)
        #expect(text.count <= 79, "\(text.count): \(text)")
        #expect(text.hasPrefix("run-6b2ffc94 1m05s · 7 running · 1 failed · 3 restarts · error: transformer: a"), "\(text)")
        #expect(text.count == 79 && text.hasSuffix("…") && !text.contains("second line"), "\(text)")
        var restarting = line
        (restarting.restarting, restarting.lastError) = (2, nil)
        #expect(restarting.text(width: 80, colour: false) == "run-6b2ffc94 1m05s · 7 running · 2 restarting · 1 failed · 3 restarts")
        var paused = line
        paused.paused = true
        #expect(paused.text(width: 80, colour: false).hasPrefix("run-6b2ffc94 1m05s · paused · 7 running"))
        let narrow = line.text(width: 40, colour: false)
        #expect(narrow.count <= 39 && narrow.hasPrefix("run-6b2ffc94 1m05s · 7 running"), "\(narrow)")
        let calm = StatusLine(run: "run-1", elapsed: .seconds(7384), running: 3).text(width: 80, colour: false)
        #expect(calm == "run-1 2h03m · 3 running · 0 restarts · 0 msg/s · 0 ckpt", "\(calm)")
        #expect(narrow.count <= 39 && !narrow.contains("error"), "\(narrow)")
    }

    @Test func colourIsOnlyWhereAskedAndDoesNotCountAsWidth() {
        let coloured = line.text(width: 80, colour: true)
        #expect(coloured.contains("\u{1B}[31m1 failed\u{1B}[0m"))
        let visible = coloured.replacing(/\x{1B}\[[0-9]+m/, with: "")
        #expect(visible == line.text(width: 80, colour: false))
        #expect(!line.text(width: 80, colour: false).contains("\u{1B}"))
    }
}

/// A foreground run's event lines: a large tree's burst of starts (or stops) is folded into a count.
struct FoldingTests {
    func event(_ name: String, _ kind: Event.Kind) -> Event {
        Event(run: "run-fold", name: name, incarnation: 1, kind: kind)
    }

    @Test func aBurstOfStartsIsFoldedIntoACountAndACrashIsNever() async throws {
        let printed = Recorder<String>()
        do {
            let display = Display(json: false, interactive: false, run: "run-fold", sink: { printed.record($0) })
            for index in 0..<1_000 { display.event(event("worker-\(index)", .started)) }
            display.event(event("worker-7", .exited(.failed(TroupeError(.invalidSpec, "boom")))))
            for index in 0..<3 { display.event(event("worker-\(index)", .stopped)) }
            display.finish()
        }
        let lines = printed.values
        #expect(lines.filter { $0.contains(" started") && !$0.hasPrefix("…") }.count == Display.Fold.shown)
        #expect(lines.contains("… \(1_000 - Display.Fold.shown) more 'started' events (`troupe events run-fold --kind started` lists them all)"))
        // The fold ends before the crash, which is printed in full; a short burst of stops is printed whole.
        let fold = try #require(lines.firstIndex { $0.hasPrefix("…") })
        #expect(lines[fold + 1].contains("worker-7#1") && lines[fold + 1].contains("crashed"))
        #expect(lines.filter { $0.contains(" stopped") }.count == 3)
        #expect(lines.count == Display.Fold.shown + 1 + 1 + 3)
    }

    @Test func jsonLinesAreNeverFolded() async throws {
        let printed = Recorder<String>()
        let display = Display(json: true, interactive: false, run: "run-fold", sink: { printed.record($0) })
        for index in 0..<100 { display.event(event("worker-\(index)", .started)) }
        display.finish()
        #expect(printed.values.count == 100)
    }
}
