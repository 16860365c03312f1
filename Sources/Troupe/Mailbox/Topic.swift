/// A named publish/subscribe channel carrying values of one type.
///
/// Agents subscribe with a function that turns a published value into one of their own messages, and every
/// published value is delivered into each subscriber's mailbox (with backpressure). Subscriptions belong to the
/// subscriber's name, so they survive its restarts.
///
/// ```swift
/// extension Topic where Payload == Quote {
///     static let quotes = Topic("quotes")
/// }
/// // in a subscriber's `started` hook:
/// context.subscribe(to: .quotes) { .quote($0) }
/// // anywhere:
/// try await context.publish(quote, to: .quotes)
/// ```
public struct Topic<Payload: Sendable>: Hashable, Sendable, CustomStringConvertible {
    /// The topic's name, unique within a run.
    public let name: String

    /// Creates a topic handle. Two handles with the same name and payload type are the same topic.
    public init(_ name: String) { self.name = name }

    public var description: String { "Topic(\(name))" }
}
