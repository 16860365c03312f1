import Glibc

/// The line a foreground run keeps current on a terminal: which run, for how long, what its agents are doing, and
/// its last error, fitted to the terminal's width (80 columns unless `COLUMNS` says otherwise).
struct StatusLine {
    var run: String
    var elapsed: Duration
    var running = 0
    var restarting = 0
    var failed = 0
    var restarts = 0
    var rate = 0.0
    var checkpoints = 0
    var paused = false
    var lastError: String?

    /// Whether to colour it: on a terminal, unless `NO_COLOR` is set to anything (no-color.org).
    static var colourWanted: Bool {
        guard let value = getenv("NO_COLOR") else { return true }
        return value.pointee == 0
    }

    /// The terminal's width: `COLUMNS` if it is a number of at least 20, else 80.
    static var width: Int {
        guard let value = getenv("COLUMNS"), let columns = Int(String(cString: value)), columns >= 20 else { return 80 }
        return columns
    }

    /// `1m05s`, `42s`, `2h03m`.
    static func clock(_ duration: Duration) -> String {
        let seconds = Int(duration.components.seconds)
        if seconds < 60 { return "\(seconds)s" }
        if seconds < 3600 { return "\(seconds / 60)m\(String(format2: seconds % 60))s" }
        return "\(seconds / 3600)h\(String(format2: seconds / 60 % 60))m"
    }

    /// The line, at most `width - 1` visible characters (the last column would wrap on some terminals): the run
    /// and its age, `paused`, what its agents do and their restarts, as much as fits; then the last error, cut short
    /// with `…`, or (with no error, or no room for one) the message rate and checkpoints. Coloured when `colour`:
    /// failures and the error in red, `paused` in yellow; colour codes take no width.
    func text(width: Int, colour: Bool) -> String {
        let room = max(10, width - 1)
        func paint(_ text: String, _ code: String) -> String { colour ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text }
        var plain = ""
        var shown = ""
        @discardableResult
        func add(_ text: String, _ code: String? = nil) -> Bool {
            let separator = plain.isEmpty ? "" : " · "
            guard plain.count + separator.count + text.count <= room else { return false }
            plain += separator + text
            shown += separator + (code.map { paint(text, $0) } ?? text)
            return true
        }
        add("\(run) \(Self.clock(elapsed))")
        if paused { add("paused", "33") }
        add("\(running) running")
        if restarting > 0 { add("\(restarting) restarting") }
        if failed > 0 { add("\(failed) failed", "31") }
        add("\(restarts) restarts")
        let prefix = "error: "
        if let error = lastError?.split(separator: "\n").first.map(String.init), room - plain.count - 3 - prefix.count >= 12 {
            let left = room - plain.count - 3 - prefix.count
            add(prefix + (error.count <= left ? error : String(error.prefix(left - 1)) + "…"), "31")
        } else {
            if add("\(Int(rate)) msg/s") { add("\(checkpoints) ckpt") }
        }
        return shown
    }
}

extension String {
    /// Two digits, zero-padded: `5` → `05`.
    init(format2 value: Int) {
        self = value < 10 ? "0\(value)" : String(value)
    }
}
