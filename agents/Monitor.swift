public import Troupe

/// Polls a source every interval, checks the snapshot's readings concurrently, and publishes alerts.
///
/// The tutorial's polling monitor, as a loop-style agent: it sleeps on the run's clock (so tests drive it with a
/// manual clock), stops promptly when asked to stop or cancelled mid-sleep, and checkpoints after every poll so a
/// restart continues the count instead of starting over.
public struct Monitor: Agent {
    public struct State: AgentState {
        /// Polls completed.
        public var polls = 0
        /// Alerts raised by the last poll.
        public var lastAlerts: [String] = []
        public init() {}
    }

    /// One value in a snapshot.
    public struct Reading: Codable, Sendable, Equatable {
        public var name: String
        public var value: Double
        public init(name: String, value: Double) {
            self.name = name
            self.value = value
        }
    }

    /// Where alerts are published.
    public static let alerts = Topic<String>("monitor.alerts")

    let interval: Duration
    let poll: @Sendable () async throws -> [Reading]
    let check: @Sendable (Reading) async -> String?
    let limit: Int?

    /// - Parameters:
    ///   - interval: Time between polls.
    ///   - poll: Takes a snapshot.
    ///   - check: Looks at one reading; returns an alert, or `nil` if all is well. Called concurrently.
    ///   - limit: How many polls in all (counted in the checkpointed state, so across restarts and resumes) before
    ///     the monitor returns; `nil` polls until it is stopped.
    public init(
        every interval: Duration,
        poll: @escaping @Sendable () async throws -> [Reading],
        check: @escaping @Sendable (Reading) async -> String?,
        limit: Int? = nil
    ) {
        self.interval = interval
        self.poll = poll
        self.check = check
        self.limit = limit
    }

    public func run(state: inout State, context: AgentContext<Self>) async throws {
        while limit.map({ state.polls < $0 }) ?? true {
            try await context.sleep(for: interval)
            let snapshot = try await poll()
            let alerts = await withTaskGroup(of: String?.self) { group in
                for reading in snapshot { group.addTask { await check(reading) } }
                return await group.reduce(into: [String]()) { if let alert = $1 { $0.append(alert) } }
            }
            state.polls += 1
            state.lastAlerts = alerts.sorted()
            try await context.checkpoint(state)
            for alert in state.lastAlerts { try await context.publish(alert, to: Self.alerts) }
        }
    }
}
