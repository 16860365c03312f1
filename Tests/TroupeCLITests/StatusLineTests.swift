import Testing
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
