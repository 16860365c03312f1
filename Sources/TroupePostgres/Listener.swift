import Glibc
import Synchronization
import Troupe

/// Wakes the readers of runs' command queues when a command is queued, and the followers of runs' event logs when
/// events are logged: a connection of its own `LISTEN`s on the channels `troupe_commands` and `troupe_events`, whose
/// payload is the run's id (sent by ``PostgresStore/enqueue(_:for:)`` and by the writer, delivered when their
/// transaction commits). Every second without a notification it wakes every watcher anyway, so a lost notification
/// (the listening connection was down) delays a command or an event by a second at most. The thread starts with the
/// first watcher.
final class Listener: Sendable {
    private struct State {
        var watchers: [UInt64: (run: RunID, channel: String, wake: @Sendable () -> Void)] = [:]
        var next: UInt64 = 0
        var started = false
        var closed = false
    }

    static let channel = "troupe_commands"
    static let eventsChannel = "troupe_events"
    private let url: String
    private let state = Mutex(State())

    init(url: String) { self.url = url }

    /// Calls `wake` (on the listener's thread; it must not block) when a notification for `run` on `channel` may
    /// have been sent: a command queued (``channel``), events logged (``eventsChannel``).
    func watch(_ run: RunID, on channel: String = Listener.channel, _ wake: @escaping @Sendable () -> Void) -> UInt64 {
        let (id, start) = state.withLock { state -> (UInt64, Bool) in
            state.next += 1
            state.watchers[state.next] = (run, channel, wake)
            defer { state.started = true }
            return (state.next, !state.started && !state.closed)
        }
        if start, startThread(named: "troupe-pg-listen", { [self] in loop() }) != nil {
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

    /// Wakes the watchers of the (channel, run) pairs notified, or every watcher.
    private func wake(_ notified: Set<Notified>?) {
        let wakes = state.withLock { state in
            state.watchers.values.filter { notified?.contains(Notified(channel: $0.channel, run: $0.run)) ?? true }.map(\.wake)
        }
        for wake in wakes { wake() }
    }

    private struct Notified: Hashable {
        let channel: String
        let run: RunID
    }

    private func loop() {
        var connection: PGConnection?
        while !closed {
            if connection?.isHealthy != true {
                connection = try? PostgresStore.connect(url)
                if let connection { try? connection.execute("LISTEN \(Self.channel); LISTEN \(Self.eventsChannel)") }
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
            guard let notifications = try? current.notifications() else {
                connection = nil
                continue
            }
            if !notifications.isEmpty { wake(Set(notifications.map { Notified(channel: $0.channel, run: RunID($0.payload)) })) }
        }
    }
}
