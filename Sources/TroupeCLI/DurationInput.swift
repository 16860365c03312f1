/// Turns numbers and durations that people type into `Duration`s, refusing what cannot be one — `nan`, `inf`,
/// negative values, values past ``maximum`` — with a sentence naming the input and what is allowed, instead of
/// trapping in a conversion (a typo must never crash a live run).
enum DurationInput {
    /// The longest duration any option or parameter takes: 10 years, far past any sensible timeout or age, and far
    /// inside what `Duration` and millisecond integers hold.
    static let maximum: Double = 10 * 365 * 86_400

    /// What was wrong with an input, as a sentence.
    struct Invalid: Error, CustomStringConvertible {
        let description: String
    }

    /// `seconds` as a duration, if it is a finite number from 0 to ``maximum``.
    ///
    /// - Parameter name: How to call the input in the error (`--grace`, `parameter 'interval'`).
    static func seconds(_ seconds: Double, _ name: String) throws(Invalid) -> Duration {
        guard seconds.isFinite, seconds >= 0, seconds <= maximum else {
            throw Invalid(
                description: "\(name) takes a number of seconds from 0 to \(Int(maximum)) (10 years), not '\(seconds)'"
            )
        }
        return .milliseconds(Int64((seconds * 1000).rounded()))
    }

    /// Text such as `250ms`, `2s`, `30m`, `12h`, `7d` or a bare number, read with `units` (suffix, seconds each;
    /// longest suffixes first) and `bare` seconds per unit for a number without a suffix (`nil`: a suffix is
    /// required).
    static func parse(_ text: String, _ name: String, units: [(String, Double)], bare: Double?) throws(Invalid) -> Duration {
        let examples = units.map { "1\($0.0)" }.joined(separator: ", ")
        let invalid = Invalid(description: "\(name) takes a duration such as \(examples), not '\(text)'")
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            guard let number = Double(text.dropLast(suffix.count)) else { throw invalid }
            return try within(number * scale, text, name)
        }
        guard let bare, let number = Double(text) else { throw invalid }
        return try within(number * bare, text, name)
    }

    private static func within(_ seconds: Double, _ text: String, _ name: String) throws(Invalid) -> Duration {
        guard seconds.isFinite, seconds >= 0, seconds <= maximum else {
            throw Invalid(description: "\(name) takes a duration from 0 to 10 years, not '\(text)'")
        }
        return .milliseconds(Int64((seconds * 1000).rounded()))
    }

    /// An age such as `90s`, `10m`, `2h` or `7d` (a unit is required), in milliseconds: how far back `--since`
    /// reaches.
    static func age(_ text: String, _ name: String) throws(Invalid) -> Int64 {
        milliseconds(try parse(text, name, units: [("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)], bare: nil))
    }

    /// A duration in whole milliseconds (every duration this type returns fits).
    static func milliseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
    }
}
