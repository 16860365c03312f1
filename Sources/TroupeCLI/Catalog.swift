public import Troupe
import Synchronization
import Glibc

/// A blueprint that a `troupe` binary can run by name, with the parameters it takes.
///
/// ```swift
/// let orders = BlueprintEntry(
///     "orders",
///     summary: "Takes orders and books them.",
///     parameters: [.init("shards", default: "4", help: "How many booking agents.")]
/// ) { parameters in
///     let shards = try parameters.int("shards")
///     return Blueprint("orders", durability: .durable) { Pool("booker", Booker(), count: shards) }
/// }
/// await TroupeCommand.main(blueprints: [orders])
/// ```
public struct BlueprintEntry: Sendable {
    /// One parameter of a blueprint.
    public struct Parameter: Sendable, Encodable, Hashable {
        /// What values a parameter takes. Checked before anything starts; `troupe blueprints` shows it.
        public enum Kind: Sendable, Hashable, Encodable {
            /// Any text.
            case text
            /// A whole number in a range.
            case integer(ClosedRange<Int>)
            /// A number in a range.
            case number(ClosedRange<Double>)
            /// A duration (`250ms`, `2s`, `1m`, `1h`, or seconds) in a range.
            case duration(ClosedRange<Duration>)

            /// What it allows, in words: `a whole number from 1 to 1000`.
            public var allowed: String {
                switch self {
                case .text: "text"
                case .integer(let range): "a whole number from \(range.lowerBound) to \(range.upperBound)"
                case .number(let range): "a number from \(range.lowerBound) to \(range.upperBound)"
                case .duration(let range):
                    "a duration from \(Self.words(range.lowerBound)) to \(Self.words(range.upperBound)), such as 250ms, 2s or 1m"
                }
            }

            /// `nil` if `value` is allowed, else why not.
            func problem(_ value: String) -> String? {
                switch self {
                case .text:
                    return nil
                case .integer(let range):
                    guard let number = Int(value), range.contains(number) else { return allowed }
                    return nil
                case .number(let range):
                    guard let number = Double(value), number.isFinite, range.contains(number) else { return allowed }
                    return nil
                case .duration(let range):
                    let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
                    guard let duration = try? DurationInput.parse(value, "", units: units, bare: 1), range.contains(duration)
                    else { return allowed }
                    return nil
                }
            }

            static func words(_ duration: Duration) -> String {
                let milliseconds = DurationInput.milliseconds(duration)
                if milliseconds % 3_600_000 == 0, milliseconds > 0 { return "\(milliseconds / 3_600_000)h" }
                if milliseconds % 60_000 == 0, milliseconds > 0 { return "\(milliseconds / 60_000)m" }
                if milliseconds % 1000 == 0 { return "\(milliseconds / 1000)s" }
                return "\(milliseconds)ms"
            }

            private enum CodingKeys: String, CodingKey { case type, min, max }

            public func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                switch self {
                case .text:
                    try container.encode("text", forKey: .type)
                case .integer(let range):
                    try container.encode("integer", forKey: .type)
                    try container.encode(range.lowerBound, forKey: .min)
                    try container.encode(range.upperBound, forKey: .max)
                case .number(let range):
                    try container.encode("number", forKey: .type)
                    try container.encode(range.lowerBound, forKey: .min)
                    try container.encode(range.upperBound, forKey: .max)
                case .duration(let range):
                    try container.encode("duration", forKey: .type)
                    try container.encode(Self.words(range.lowerBound), forKey: .min)
                    try container.encode(Self.words(range.upperBound), forKey: .max)
                }
            }
        }

        /// The key given as `--param KEY=VALUE`.
        public var name: String
        /// The value used when the operator gives none.
        public var defaultValue: String
        /// What it means, for `troupe blueprints`.
        public var help: String
        /// What values it takes.
        public var kind: Kind

        /// Creates a parameter.
        public init(_ name: String, default defaultValue: String, help: String, kind: Kind = .text) {
            self.name = name
            self.defaultValue = defaultValue
            self.help = help
            self.kind = kind
        }

        private enum CodingKeys: String, CodingKey { case name, defaultValue, help, kind }
    }

    /// The name operators use: `troupe run NAME`.
    public var name: String
    /// One sentence saying what it does.
    public var summary: String
    /// The parameters it takes.
    public var parameters: [Parameter]
    /// Builds the tree from the parameters (every declared one is present, defaults filled in).
    public var make: @Sendable (Parameters) throws -> Blueprint
    /// The agent whose last checkpoint is the run's result (`troupe result RUN` prints its state), if the
    /// blueprint declares one.
    public var result: String?

    /// Creates an entry.
    public init(
        _ name: String,
        summary: String,
        parameters: [Parameter] = [],
        result: String? = nil,
        make: @escaping @Sendable (Parameters) throws -> Blueprint
    ) {
        self.name = name
        self.summary = summary
        self.parameters = parameters
        self.result = result
        self.make = make
    }

    /// Fills in defaults and checks the operator's parameters against the declared ones.
    ///
    /// - Throws: `TroupeError.Code.invalidSpec` naming an unknown key.
    func resolve(_ given: [String: String]) throws -> [String: String] {
        let known = Set(parameters.map(\.name))
        if let unknown = given.keys.sorted().first(where: { !known.contains($0) }) {
            let list = parameters.map(\.name).joined(separator: ", ")
            throw TroupeError(
                .invalidSpec,
                "blueprint '\(name)' has no parameter '\(unknown)'. Its parameters: \(list.isEmpty ? "none" : list) "
                    + "(see `troupe blueprints`)."
            )
        }
        var resolved = given
        for parameter in parameters where resolved[parameter.name] == nil {
            resolved[parameter.name] = parameter.defaultValue
        }
        for parameter in parameters {
            let value = resolved[parameter.name] ?? ""
            if let allowed = parameter.kind.problem(value) {
                throw TroupeError(
                    .invalidSpec,
                    "parameter '\(parameter.name)' of blueprint '\(name)' takes \(allowed), not '\(value)' "
                        + "(see `troupe blueprints`)."
                )
            }
        }
        return resolved
    }

    /// Builds the blueprint from already resolved parameters.
    func build(_ resolved: [String: String]) throws -> Blueprint {
        try make(Parameters(blueprint: name, values: resolved))
    }
}

/// The parameters handed to ``BlueprintEntry/make``, with typed accessors that fail with a clear message.
public struct Parameters: Sendable {
    let blueprint: String
    /// The raw values, by key.
    public let values: [String: String]

    /// The value of `key`.
    public func string(_ key: String) -> String { values[key] ?? "" }

    /// The value of `key` as an integer.
    ///
    /// - Throws: `TroupeError.Code.invalidSpec` if it is not one.
    public func int(_ key: String) throws -> Int {
        guard let value = Int(string(key)) else {
            throw TroupeError(
                .invalidSpec,
                "parameter '\(key)' of blueprint '\(blueprint)' must be a whole number, not '\(string(key))'."
            )
        }
        return value
    }

    /// The value of `key` as a finite number.
    ///
    /// - Throws: `TroupeError.Code.invalidSpec` if it is not one.
    public func number(_ key: String) throws -> Double {
        guard let value = Double(string(key)), value.isFinite else {
            throw TroupeError(
                .invalidSpec,
                "parameter '\(key)' of blueprint '\(blueprint)' must be a finite number, such as 0.05, not '\(string(key))'."
            )
        }
        return value
    }

    /// The value of `key` as a duration: `250ms`, `2s`, `1m`, or a number of seconds.
    ///
    /// - Throws: `TroupeError.Code.invalidSpec` if it is not one.
    public func duration(_ key: String) throws -> Duration {
        let text = string(key)
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        do {
            return try DurationInput.parse(text, "parameter '\(key)' of blueprint '\(blueprint)'", units: units, bare: 1)
        } catch {
            throw TroupeError(.invalidSpec, error.description + ".")
        }
    }
}

/// The blueprints this binary can run.
enum Catalog {
    private static let installed = Mutex<(entries: [BlueprintEntry], services: [any Sendable])>(([], []))

    static func install(_ entries: [BlueprintEntry], services: [any Sendable]) {
        installed.withLock { $0 = (entries, services) }
    }

    static var entries: [BlueprintEntry] { installed.withLock { $0.entries } }

    /// Shared clients handed to every run this binary starts (`Run.Configuration.services`).
    static var services: [any Sendable] { installed.withLock { $0.services } }

    /// Looks a blueprint up by name.
    ///
    /// - Throws: ``TroupeError/Code/unknownBlueprint`` (exit 66) naming the blueprints there are.
    static func entry(_ name: String) throws -> BlueprintEntry {
        guard let entry = entries.first(where: { $0.name == name }) else {
            let guess = Arguments.closest(to: name, in: entries.map(\.name)).map { "Did you mean '\($0)'? " } ?? ""
            throw TroupeError(
                .unknownBlueprint,
                "this troupe has no blueprint '\(name)'. \(guess)It has: "
                    + "\(entries.isEmpty ? "none" : entries.map(\.name).joined(separator: ", ")). "
                    + "`troupe blueprints` lists them with their parameters."
            )
        }
        return entry
    }
}
