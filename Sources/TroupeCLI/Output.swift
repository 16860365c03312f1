#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

import Synchronization

/// Where the CLI writes: standard output and standard error, or buffers while a test runs a command in its own
/// process (``capturing(_:)``).
package enum CommandOutput {
    private static let capture = Mutex<(out: String, err: String)?>(nil)

    /// Runs `body` with the CLI's output going to buffers, and returns them. One capture at a time.
    package static func capturing(_ body: () async throws -> Void) async rethrows -> (out: String, err: String) {
        capture.withLock { $0 = ("", "") }
        defer { capture.withLock { $0 = nil } }
        try await body()
        return capture.withLock { $0 ?? ("", "") }
    }

    /// Appends to the capture, if one is on; returns whether it was.
    static func captured(_ text: String, error: Bool) -> Bool {
        capture.withLock { capture in
            guard capture != nil else { return false }
            if error { capture!.err += text } else { capture!.out += text }
            return true
        }
    }
}

/// Writes a line to standard output (the CLI's own `print`, which a test can capture).
func say(_ line: String = "", terminator: String = "\n") {
    if CommandOutput.captured(line + terminator, error: false) { return }
    Swift.print(line, terminator: terminator)
}

/// Writes a line to standard error.
package func printError(_ line: String) {
    if CommandOutput.captured(line + "\n", error: true) { return }
    var line = line
    line.append("\n")
    line.withUTF8 { bytes in
        var offset = 0
        while offset < bytes.count {
            let written = write(2, bytes.baseAddress! + offset, bytes.count - offset)
            guard written > 0 else { return }
            offset += written
        }
    }
}

/// Flushes standard output, so that lines printed from several threads come out whole and in order.
package func flushOutput() {
    fflush(nil)
}

extension String {
    /// The string padded with spaces to at least `width` characters.
    package func padded(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }

    package func trimmingTrailingSpaces() -> String {
        var result = self
        while result.last == " " { result.removeLast() }
        return result
    }
}
