public import Foundation
public import Testing
import TroupeTestKit
import Glibc

/// Waits off the cooperative pool for `process` to exit, for at most `limit`. A process still running then is
/// killed with `SIGKILL` and the test records an issue naming it: a process that never ends fails its test instead
/// of hanging the suite.
public func waitForExit(
    _ process: Process,
    within limit: Duration = .seconds(90),
    sourceLocation: SourceLocation = #_sourceLocation
) async {
    let watchdog = watch(process, for: limit, sourceLocation: sourceLocation)
    await offThePool { process.waitUntilExit() }
    watchdog.cancel()
}

/// Kills `process` with `SIGKILL`, recording an issue, if it still runs after `limit`; cancel the task once it has
/// ended. Start it before reading a process's output to its end, which would otherwise wait as long as it runs.
public func watch(_ process: Process, for limit: Duration, sourceLocation: SourceLocation = #_sourceLocation) -> Task<Void, any Error> {
    Task {
        try await Task.sleep(for: limit)
        guard process.isRunning else { return }
        let arguments = (process.arguments ?? []).joined(separator: " ")
        Issue.record("process \(process.processIdentifier) (\(arguments)) was still running after \(limit); killed it", sourceLocation: sourceLocation)
        kill(process.processIdentifier, SIGKILL)
    }
}

/// Polls `condition` until it holds or `limit` has passed, and says which. The first look is at once; the pauses
/// between looks start at 50 ms and grow by half each time, to 1 s at most. A look is often a `troupe` process:
/// at a fixed 50 ms, the suite's many polling tests started thousands of them in its loaded first minute, and took
/// the CPU from the very processes they were waiting for.
public func poll(within limit: Duration, _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + limit
    var pause = Duration.milliseconds(50)
    while true {
        if try await condition() { return true }
        let now = ContinuousClock.now
        guard now < deadline else { return false }
        try await Task.sleep(for: min(pause, deadline - now))
        pause = min(pause * 1.5, .seconds(1))
    }
}

/// Where tests put their files: `/dev/shm` (memory) where there is one, else the system's temporary directory.
/// The suite writes and syncs databases by the thousand, and on a disk the kernel's writeback threads took a third
/// of a 2-core machine from the tests; what the tests check is a process's crash (`kill -9`), which memory
/// survives as a disk does.
public let scratchRoot: String = {
    var isDirectory: ObjCBool = false
    if FileManager.default.fileExists(atPath: "/dev/shm", isDirectory: &isDirectory), isDirectory.boolValue,
        FileManager.default.isWritableFile(atPath: "/dev/shm")
    {
        return "/dev/shm/"
    }
    return NSTemporaryDirectory()
}()

/// A fresh directory under ``scratchRoot``, removed with everything in it when the last reference goes (hold it in
/// the suite, or keep it alive to the end of the test with `withExtendedLifetime`).
public final class ScratchDirectory: Sendable {
    /// The directory's path.
    public let path: String

    /// Creates the directory, named `prefix` followed by a UUID.
    public init(_ prefix: String) throws {
        path = scratchRoot + prefix + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// The path of `name` inside the directory.
    public func file(_ name: String) -> String { path + "/" + name }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// What a process printed and how it ended.
public struct ProcessOutput: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Starts `process` with its output piped, and waits (off the cooperative pool) for it to end, for at most `limit`.
public func runToEnd(_ process: Process, within limit: Duration = .seconds(90)) async throws -> ProcessOutput {
    let out = await makePipe()
    let err = await makePipe()
    process.standardOutput = out
    process.standardError = err
    try await launch(process)
    let watchdog = watch(process, for: limit)
    defer { watchdog.cancel() }
    async let stdout = offThePool { out.fileHandleForReading.readDataToEndOfFile() }
    let stderr = await offThePool { err.fileHandleForReading.readDataToEndOfFile() }
    let stdoutData = await stdout
    await waitForExit(process, within: limit)
    return ProcessOutput(
        status: process.terminationStatus,
        stdout: String(decoding: stdoutData, as: UTF8.self),
        stderr: String(decoding: stderr, as: UTF8.self)
    )
}

/// Reads one line (without its newline) from `descriptor`, off the cooperative pool; what there is at its end.
public func readLine(from descriptor: Int32) async -> String {
    await offThePool {
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while read(descriptor, &byte, 1) == 1, byte != 10 { bytes.append(byte) }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Type-checks `files` as one module with the toolchain's `swiftc`, against the modules the tests were built with
/// (they sit next to the test bundle) and the checkout's C modules. A file named `main.swift` holds top-level code.
public func swiftTypecheck(_ files: [String]) async throws -> ProcessOutput {
    let modules = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("Modules").path
    let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Sources").path
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["swiftc", "-typecheck", "-swift-version", "6", "-I", modules]
        + ["CSQLite", "CCurl", "CPostgres"].flatMap { ["-I", sources + "/" + $0] } + files
    return try await runToEnd(process)
}

/// Starts `process` on a thread of its own. `Process.run()` blocks its thread while it spawns the child: on the
/// cooperative pool, the tests' many launches at the start of the suite held both of its threads, and unrelated
/// tests missed their deadlines.
///
/// One launch at a time (``whileNoChildStarts(_:)``). Foundation's `Process` learns that a child ended when the
/// other end of a socket pair it gives the child closes, and closes in each child the descriptors it finds open
/// when it lists them; neither the pair nor a `Pipe` is close-on-exec. A child started by another thread between
/// that listing and its spawn kept such descriptors: a long-lived child (a run, a worker, a server) then held
/// other tests' pipes and pairs open, and processes that had long ended looked alive until it died (seen in CI:
/// fifteen `troupe` commands of a second each "still running after 90 s").
public func launch(_ process: Process) async throws {
    try await offThePool { Result { try whileNoChildStarts { try process.run() } } }.get()
}

/// A `Pipe` for a child's standard input or output, made while no child starts and close-on-exec at both ends, so
/// that no child but the one it is given to (as its 0, 1 or 2) ever holds it. Use it instead of `Pipe()`. It
/// waits off the cooperative pool, since a launch may hold the lock for a while on a loaded machine.
public func makePipe() async -> Pipe {
    await offThePool {
        whileNoChildStarts {
            let pipe = Pipe()
            for handle in [pipe.fileHandleForReading, pipe.fileHandleForWriting] {
                _ = fcntl(handle.fileDescriptor, F_SETFD, FD_CLOEXEC)
            }
            return pipe
        }
    }
}

/// Runs `body` while no other thread of this process starts a child: every start of a child by the tests goes
/// through here (``launch(_:)``, ``makePipe()``, and the tests' own `posix_spawn` of server programs), as does
/// any making of a descriptor that a child must not inherit and that cannot be made close-on-exec atomically.
public func whileNoChildStarts<T>(_ body: () throws -> T) rethrows -> T {
    childStarts.lock()
    defer { childStarts.unlock() }
    return try body()
}

private let childStarts = NSLock()

/// Every descriptor of this process from 3 up that is open now, for a `posix_spawn` that must close them all in
/// the child (call it inside ``whileNoChildStarts(_:)``, so that none is made between the listing and the spawn).
public func openDescriptorsFrom3() -> [Int32] {
    let listed = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    return listed.compactMap(Int32.init).filter { $0 >= 3 }
}

/// A port on 127.0.0.1 that something already listens on, for as long as the value lives: for tests of what a
/// process does when the address it is given is taken.
public final class OccupiedPort: Sendable {
    public let port: Int
    private let socket: Int32

    public init() throws {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(socket, pointer, length) == 0 && listen(socket, 1) == 0 && getsockname(socket, pointer, &length) == 0
            }
        }
        guard socket >= 0, bound else {
            if socket >= 0 { Glibc.close(socket) }
            throw POSIXError(.EADDRNOTAVAIL)
        }
        self.socket = socket
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { Glibc.close(socket) }
}
