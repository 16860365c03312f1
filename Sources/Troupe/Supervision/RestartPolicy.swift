/// Which children a supervisor restarts when one of them exits and must be restarted.
///
/// | strategy | restarted together with the exited child |
/// |---|---|
/// | ``oneForOne`` | nothing else |
/// | ``oneForAll`` | every other running child (stopped first, in reverse start order) |
/// | ``restForOne`` | the running children started after it (stopped first, in reverse start order) |
public struct RestartStrategy: Hashable, Sendable, CustomStringConvertible {
    enum Value: Hashable, Sendable {
        case oneForOne, oneForAll, restForOne
    }

    let value: Value
    private init(_ value: Value) { self.value = value }

    /// Restart only the child that exited. For independent children.
    public static let oneForOne = RestartStrategy(.oneForOne)
    /// Stop and restart every child. For children that cannot work without each other.
    public static let oneForAll = RestartStrategy(.oneForAll)
    /// Stop and restart the child and every child started after it. For pipelines where later children depend on
    /// earlier ones.
    public static let restForOne = RestartStrategy(.restForOne)

    public var description: String {
        switch value {
        case .oneForOne: "oneForOne"
        case .oneForAll: "oneForAll"
        case .restForOne: "restForOne"
        }
    }
}

/// How many restarts a supervisor tolerates within a period before it gives up and escalates.
///
/// When more than ``maxRestarts`` restarts fall within any window of length ``period``, the supervisor stops all
/// its children in reverse start order and fails, so that its own supervisor can restart it (or fail in turn).
public struct RestartIntensity: Hashable, Sendable, CustomStringConvertible {
    /// Restarts allowed within ``period``; one more escalates. Zero means the first restart escalates.
    public var maxRestarts: Int
    /// The sliding window restarts are counted in.
    public var period: Duration

    /// Creates an intensity.
    ///
    /// - Parameters:
    ///   - maxRestarts: Restarts allowed within `period`; must not be negative.
    ///   - period: The window; must be positive.
    public init(maxRestarts: Int, within period: Duration) {
        precondition(maxRestarts >= 0, "maxRestarts must not be negative (got \(maxRestarts))")
        precondition(period > .zero, "the intensity period must be positive (got \(period))")
        self.maxRestarts = maxRestarts
        self.period = period
    }

    /// 5 restarts within 10 seconds.
    public static let `default` = RestartIntensity(maxRestarts: 5, within: .seconds(10))

    public var description: String { "\(maxRestarts) restarts within \(period)" }
}

/// How long a supervisor waits before restarting a child that keeps failing: exponential, capped, with jitter.
///
/// The n-th consecutive restart of a child waits `initial × multiplierⁿ⁻¹`, capped at ``maximum``, then scaled by a
/// random factor in `1 ± jitter`. A child that ran for at least ``resetAfter`` before exiting starts again from
/// the first delay.
public struct Backoff: Hashable, Sendable, CustomStringConvertible {
    /// The delay before the first restart.
    public var initial: Duration
    /// The growth factor between consecutive restarts; at least 1.
    public var multiplier: Double
    /// The largest delay.
    public var maximum: Duration
    /// The random spread, as a fraction of the delay, in `0...1`.
    public var jitter: Double
    /// How long a child must run for its next failure to count as a first one again.
    public var resetAfter: Duration

    /// Creates an exponential backoff.
    public static func exponential(
        initial: Duration,
        multiplier: Double = 2,
        maximum: Duration,
        jitter: Double = 0.2,
        resetAfter: Duration = .seconds(10)
    ) -> Backoff {
        precondition(initial >= .zero && maximum >= initial, "backoff needs 0 ≤ initial ≤ maximum")
        precondition(multiplier >= 1, "the backoff multiplier must be at least 1 (got \(multiplier))")
        precondition((0...1).contains(jitter), "the backoff jitter must be within 0...1 (got \(jitter))")
        return Backoff(
            initial: initial,
            multiplier: multiplier,
            maximum: maximum,
            jitter: jitter,
            resetAfter: resetAfter
        )
    }

    /// Restart at once, every time. OTP's behaviour.
    public static let none = Backoff(initial: .zero, multiplier: 1, maximum: .zero, jitter: 0, resetAfter: .zero)

    /// 10 ms doubling up to 5 s, with 20 % jitter.
    public static let `default` = Backoff.exponential(initial: .milliseconds(10), maximum: .seconds(5))

    /// The delay before the `attempt`-th consecutive restart (1-based), for a random draw `random` in `0..<1`.
    public func delay(attempt: Int, random: Double) -> Duration {
        guard initial > .zero, attempt > 0 else { return .zero }
        var delay = initial
        var step = 1
        while step < attempt, delay < maximum {
            delay = delay * multiplier
            step += 1
        }
        delay = min(delay, maximum)
        let factor = 1 + jitter * (2 * random - 1)
        return min(delay * factor, maximum)
    }

    public var description: String {
        self == .none ? "none" : "\(initial)×\(multiplier) up to \(maximum) ±\(Int(jitter * 100))%"
    }
}
