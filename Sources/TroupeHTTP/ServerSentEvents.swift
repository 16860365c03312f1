/// One event of a `text/event-stream` response.
public struct ServerSentEvent: Sendable, Hashable {
    /// The `event:` field (`nil` means the default type, `message`).
    public var event: String?
    /// The `data:` lines, joined with newlines.
    public var data: String
    /// The `id:` field.
    public var id: String?
}

/// Parses a byte stream as server-sent events (the WHATWG `text/event-stream` format): lines of `field: value`,
/// an empty line ending each event, `:` lines as comments, CRLF or LF line ends.
///
/// ```swift
/// let response = try await client.stream(request)
/// for try await event in ServerSentEvents(response.body) where event.data != "[DONE]" { … }
/// ```
public struct ServerSentEvents<Base: AsyncSequence & Sendable>: AsyncSequence, Sendable where Base.Element == [UInt8] {
    public typealias Element = ServerSentEvent
    let base: Base

    /// Parses `base`.
    public init(_ base: Base) { self.base = base }

    public func makeAsyncIterator() -> Iterator { Iterator(base: base.makeAsyncIterator()) }

    /// Yields events as their terminating empty line arrives.
    public struct Iterator: AsyncIteratorProtocol {
        var base: Base.AsyncIterator
        var pending: [UInt8] = []
        var event: String?
        var data: [String] = []
        var id: String?
        var finished = false

        public mutating func next() async throws -> ServerSentEvent? {
            try await next(isolation: nil)
        }

        public mutating func next(isolation actor: isolated (any Actor)?) async throws -> ServerSentEvent? {
            while true {
                while let newline = pending.firstIndex(of: 10) {
                    var line = Array(pending[..<newline])
                    pending.removeFirst(newline + 1)
                    if line.last == 13 { line.removeLast() }
                    if let event = take(String(decoding: line, as: UTF8.self)) { return event }
                }
                if finished { return flush() }
                guard let chunk = try await base.next(isolation: actor) else {
                    finished = true
                    if !pending.isEmpty { pending.append(10) }
                    continue
                }
                pending.append(contentsOf: chunk)
            }
        }

        /// Handles one line; returns an event when the line ends one.
        private mutating func take(_ line: String) -> ServerSentEvent? {
            if line.isEmpty { return flush() }
            if line.hasPrefix(":") { return nil }
            let field: Substring
            var value: Substring
            if let colon = line.firstIndex(of: ":") {
                field = line[..<colon]
                value = line[line.index(after: colon)...]
                if value.first == " " { value = value.dropFirst() }
            } else {
                field = Substring(line)
                value = ""
            }
            switch field {
            case "event": event = String(value)
            case "data": data.append(String(value))
            case "id": id = String(value)
            default: break
            }
            return nil
        }

        private mutating func flush() -> ServerSentEvent? {
            defer {
                event = nil
                data = []
            }
            guard !data.isEmpty || event != nil else { return nil }
            return ServerSentEvent(event: event, data: data.joined(separator: "\n"), id: id)
        }
    }
}
