import Glibc
import Synchronization
import Troupe

/// A small HTTP/1.1 server on 127.0.0.1, for tests, benchmarks and offline demos — never for production traffic.
///
/// Each connection gets a thread; requests on it are answered in order (keep-alive). The handler decides the
/// reply, including faults a client must survive: delays, streamed chunks, a body cut short, a connection closed
/// or reset without an answer, a server that accepts and never answers.
///
/// ```swift
/// let server = try LoopbackServer { request in
///     request.path == "/quote" ? .respond(status: 200, body: Array("42".utf8)) : .respond(status: 404)
/// }
/// defer { server.close() }
/// let response = try await client.execute(.get(server.url("/quote")))
/// ```
public final class LoopbackServer: Sendable {
    /// The server could not start: no socket on 127.0.0.1, or no thread.
    public struct StartError: Error, CustomStringConvertible {
        /// What failed.
        public var description: String
    }

    /// A request as the handler sees it.
    public struct Request: Sendable {
        /// `GET`, `POST`, …
        public var method: String
        /// The path with its query, such as `/quotes?symbol=ACME`.
        public var path: String
        /// Header fields, in order.
        public var headers: [(name: String, value: String)]
        /// The body.
        public var body: [UInt8]

        /// The first value of a header field, compared without case.
        public func header(_ name: String) -> String? {
            headers.first { $0.name.lowercased() == name.lowercased() }?.value
        }
    }

    /// What to answer.
    public indirect enum Reply: Sendable {
        /// A complete response.
        case respond(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = [])
        /// Wait, then reply.
        case delayed(Duration, Reply)
        /// A chunked response: each chunk after its delay (server-sent events, token streams).
        case stream(status: Int, headers: [(name: String, value: String)] = [], chunks: [(delay: Duration, bytes: [UInt8])])
        /// Announce `declaredLength` bytes, send `body` (fewer), and close: a cut-off body.
        case truncated(status: Int, declaredLength: Int, body: [UInt8])
        /// Close the connection without answering.
        case close
        /// Reset the connection (TCP RST) without answering.
        case reset
        /// Never answer; the connection stays open until the server closes.
        case hang
    }

    /// The port the server listens on.
    public let port: Int
    private let listener: Int32
    private let handler: @Sendable (Request) -> Reply
    private let state = Mutex<(closed: Bool, connections: Set<Int32>)>((false, []))
    /// Requests answered so far.
    private let served = Atomic<Int>(0)

    /// Starts a server on 127.0.0.1 on a free port.
    ///
    /// - Throws: ``HTTPClientError`` with ``HTTPClientError/Code/transport`` if the socket cannot be set up.
    public init(_ handler: @escaping @Sendable (Request) -> Reply) throws {
        self.handler = handler
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var yes: Int32 = 1
        setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard socket >= 0, bound == 0, listen(socket, 512) == 0 else {
            Glibc.close(socket)
            throw StartError(description: "cannot listen on 127.0.0.1: \(String(cString: strerror(errno)))")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(socket, $0, &length) }
        }
        self.listener = socket
        self.port = Int(UInt16(bigEndian: address.sin_port))
        if let failure = startThread(named: "loopback-accept", { [self] in acceptLoop() }) {
            Glibc.close(socket)
            throw StartError(description: "cannot start the loopback server's thread: \(failure)")
        }
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    public func url(_ path: String = "/") -> String { "http://127.0.0.1:\(port)\(path)" }

    /// How many requests the server has answered.
    public var requestCount: Int { served.load(ordering: .relaxed) }

    /// Stops listening and closes every connection.
    public func close() {
        let connections = state.withLock { state -> Set<Int32> in
            guard !state.closed else { return [] }
            state.closed = true
            return state.connections
        }
        Glibc.shutdown(listener, Int32(SHUT_RDWR))
        for connection in connections { Glibc.shutdown(connection, Int32(SHUT_RDWR)) }
    }

    deinit { Glibc.close(listener) }

    private var isClosed: Bool { state.withLock { $0.closed } }

    private func acceptLoop() {
        while true {
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else {
                if errno == EINTR { continue }
                return
            }
            let admitted = state.withLock { state -> Bool in
                guard !state.closed else { return false }
                state.connections.insert(connection)
                return true
            }
            guard admitted else {
                Glibc.close(connection)
                return
            }
            var yes: Int32 = 1
            setsockopt(connection, Int32(IPPROTO_TCP), TCP_NODELAY, &yes, socklen_t(MemoryLayout<Int32>.size))
            if startThread(named: "loopback-serve", { [self] in serve(connection) }) != nil {
                // No thread for it: refuse the connection rather than leave the client waiting.
                state.withLock { _ = $0.connections.remove(connection) }
                Glibc.close(connection)
            }
        }
    }

    private func serve(_ connection: Int32) {
        defer {
            state.withLock { _ = $0.connections.remove(connection) }
            Glibc.close(connection)
        }
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            // Read one request: the head, then Content-Length bytes of body.
            var headEnd: Int?
            while headEnd == nil {
                if let end = Self.find([13, 10, 13, 10], in: buffer) {
                    headEnd = end
                    break
                }
                let count = read(connection, &chunk, chunk.count)
                guard count > 0 else { return }
                buffer.append(contentsOf: chunk[0..<count])
            }
            guard let end = headEnd else { return }
            let head = String(decoding: buffer[0..<end], as: UTF8.self)
            var lines = head.split(separator: "\r\n", omittingEmptySubsequences: false).map(String.init)
            let requestLine = lines.removeFirst().split(separator: " ")
            guard requestLine.count >= 2 else { return }
            var headers: [(name: String, value: String)] = []
            for line in lines {
                guard let colon = line.firstIndex(of: ":") else { continue }
                headers.append((String(line[..<colon]), String(line[line.index(after: colon)...].drop { $0 == " " })))
            }
            let length = headers.first { $0.name.lowercased() == "content-length" }.flatMap { Int($0.value) } ?? 0
            while buffer.count < end + 4 + length {
                let count = read(connection, &chunk, chunk.count)
                guard count > 0 else { return }
                buffer.append(contentsOf: chunk[0..<count])
            }
            let body = Array(buffer[(end + 4)..<(end + 4 + length)])
            buffer.removeFirst(end + 4 + length)
            let request = Request(method: String(requestLine[0]), path: String(requestLine[1]), headers: headers, body: body)
            let keepAlive = request.header("Connection")?.lowercased() != "close"
            served.add(1, ordering: .relaxed)
            guard answer(handler(request), on: connection), keepAlive else { return }
        }
    }

    /// Writes the reply; returns whether the connection may carry another request.
    private func answer(_ reply: Reply, on connection: Int32) -> Bool {
        switch reply {
        case .respond(let status, let headers, let body):
            var head = "HTTP/1.1 \(status) \(Self.reason(status))\r\nContent-Length: \(body.count)\r\n"
            for header in headers { head += "\(header.name): \(header.value)\r\n" }
            return write(Array((head + "\r\n").utf8) + body, to: connection)
        case .delayed(let delay, let reply):
            pause(delay)
            return isClosed ? false : answer(reply, on: connection)
        case .stream(let status, let headers, let chunks):
            var head = "HTTP/1.1 \(status) \(Self.reason(status))\r\nTransfer-Encoding: chunked\r\n"
            for header in headers { head += "\(header.name): \(header.value)\r\n" }
            guard write(Array((head + "\r\n").utf8), to: connection) else { return false }
            for chunk in chunks {
                pause(chunk.delay)
                if isClosed { return false }
                let framed = Array((String(chunk.bytes.count, radix: 16) + "\r\n").utf8) + chunk.bytes + [13, 10]
                guard write(framed, to: connection) else { return false }
            }
            return write(Array("0\r\n\r\n".utf8), to: connection)
        case .truncated(let status, let declaredLength, let body):
            let head = "HTTP/1.1 \(status) \(Self.reason(status))\r\nContent-Length: \(declaredLength)\r\n\r\n"
            _ = write(Array(head.utf8) + body, to: connection)
            return false
        case .close:
            return false
        case .reset:
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            setsockopt(connection, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
            return false
        case .hang:
            while !isClosed { pause(.milliseconds(10)) }
            return false
        }
    }

    private func write(_ bytes: [UInt8], to connection: Int32) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { send(connection, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            guard written > 0 else { return false }
            offset += written
        }
        return true
    }

    private func pause(_ duration: Duration) {
        let microseconds = duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000
        if microseconds > 0 { usleep(useconds_t(microseconds)) }
    }

    private static func find(_ pattern: [UInt8], in bytes: [UInt8]) -> Int? {
        guard bytes.count >= pattern.count else { return nil }
        for start in 0...(bytes.count - pattern.count) where bytes[start] == pattern[0] {
            if Array(bytes[start..<(start + pattern.count)]) == pattern { return start }
        }
        return nil
    }

    private static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 201: "Created"
        case 204: "No Content"
        case 301: "Moved Permanently"
        case 302: "Found"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 404: "Not Found"
        case 429: "Too Many Requests"
        case 500: "Internal Server Error"
        case 503: "Service Unavailable"
        default: "Status"
        }
    }
}

