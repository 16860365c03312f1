import Glibc
import Synchronization
import Troupe

/// Wakes the readers of runs' command queues when a command is queued: a connection of its own `LISTEN`s on the
/// channel `troupe_commands`, whose payload is the run's id (sent by ``PostgresStore/enqueue(_:for:)`` when its
/// insert commits). Every second without a notification it wakes every reader anyway, so a lost notification (the
/// listening connection was down) delays a command by a second at most. The thread starts with the first watcher.
final class Listener: Sendable {
    private struct State {
        var watchers: [UInt64: (run: RunID, wake: @Sendable () -> Void)] = [:]
        var next: UInt64 = 0
        var started = false
        var closed = false
    }

    static let channel = "troupe_commands"
    private let url: String
    private let state = Mutex(State())

    init(url: String) { self.url = url }

    /// Calls `wake` (on the listener's thread; it must not block) when a command for `run` may have been queued.
    func watch(_ run: RunID, _ wake: @escaping @Sendable () -> Void) -> UInt64 {
        let (id, start) = state.withLock { state -> (UInt64, Bool) in
            state.next += 1
            state.watchers[state.next] = (run, wake)
            defer { state.started = true }
            return (state.next, !state.started && !state.closed)
        }
        if start, startThread({ [self] in loop() }) != nil {
            // No thread: readers still get the initial read; say so by waking them once.
            wake()
        }
        return id
    }

    func unwatch(_ id: UInt64) {
        state.withLock { _ = $0.watchers.removeValue(forKey: id) }
    }

    /// Stops the thread within a second.
    func close() {
        state.withLock { $0.closed = true }
    }

    private var closed: Bool { state.withLock { $0.closed } }

    private func wake(_ runs: Set<RunID>?) {
        let wakes = state.withLock { state in
            state.watchers.values.filter { runs?.contains($0.run) ?? true }.map(\.wake)
        }
        for wake in wakes { wake() }
    }

    private func loop() {
        var connection: PGConnection?
        while !closed {
            if connection?.isHealthy != true {
                connection = try? PostgresStore.connect(url)
                if let connection { try? connection.execute("LISTEN \(Self.channel)") }
            }
            guard let current = connection, current.isHealthy else {
                wake(nil)
                usleep(1_000_000)
                continue
            }
            var descriptor = pollfd(fd: current.socket, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, 1000)
            if ready <= 0 {
                wake(nil)
                continue
            }
            guard let payloads = try? current.notifications() else {
                connection = nil
                continue
            }
            if !payloads.isEmpty { wake(Set(payloads.map { RunID($0) })) }
        }
    }
}
