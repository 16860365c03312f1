import CCurl
import Synchronization

/// One HTTP transfer on a ``CurlLoop``: its easy handle, what has been received, and who waits for it.
///
/// `@unchecked Sendable` because, apart from `aborted` (an atomic) and `fail`/`failCancelled` on a transfer that
/// never reached the loop, every member is touched only by the loop thread: `prepare`, the libcurl callbacks
/// (which libcurl runs inside `curl_multi_perform`, on the loop thread) and `complete`.
final class Transfer: @unchecked Sendable {
    /// Where the outcome goes.
    enum Sink {
        /// The whole response, when the transfer completes.
        case collect(UnsafeContinuation<HTTPResponse, any Error>)
        /// The head when the body starts (or the transfer ends), then the body in chunks.
        case stream(head: UnsafeContinuation<HTTPHead, any Error>, body: AsyncThrowingStream<[UInt8], any Error>.Continuation)
    }

    let request: HTTPRequest
    let defaultTimeout: Duration?
    let connectTimeout: Duration
    let verifyTLS: Bool
    let userAgent: String
    private let sink: Sink
    let aborted = Atomic<Bool>(false)
    private let settled = Atomic<Bool>(false)

    private(set) var easy: UnsafeMutableRawPointer?
    private var headerList: UnsafeMutablePointer<curl_slist>?
    private var status = 0
    private var headers: [(name: String, value: String)] = []
    private var body: [UInt8] = []
    private var headDelivered = false
    private var retained: Unmanaged<Transfer>?

    init(request: HTTPRequest, sink: Sink, defaultTimeout: Duration?, connectTimeout: Duration, verifyTLS: Bool, userAgent: String) {
        self.request = request
        self.sink = sink
        self.defaultTimeout = defaultTimeout
        self.connectTimeout = connectTimeout
        self.verifyTLS = verifyTLS
        self.userAgent = userAgent
    }

    deinit {
        if let easy { curl_easy_cleanup(easy) }
        if let headerList { curl_slist_free_all(headerList) }
    }

    // MARK: On the loop thread

    /// Creates and configures the easy handle.
    func prepare() throws {
        guard let easy = curl_easy_init() else {
            throw HTTPClientError(code: .transport, curlCode: nil, status: nil, url: HTTPClientError.redact(request.url), message: "libcurl could not create a transfer", attempts: 1)
        }
        self.easy = easy
        let context = Unmanaged.passRetained(self)
        retained = context
        let opaque = context.toOpaque()
        troupe_curl_setopt_string(easy, CURLOPT_URL, request.url)
        troupe_curl_setopt_pointer(easy, CURLOPT_PRIVATE, opaque)
        troupe_curl_setopt_long(easy, CURLOPT_NOSIGNAL, 1)
        if !request.isIdempotent {
            // libcurl silently re-sends a request on a new connection when the kept-alive one it reused turns out
            // closed; for a POST that means the server may get it twice. A fresh connection for each
            // non-idempotent request leaves libcurl nothing to re-send: one call, at most one request on the wire.
            troupe_curl_setopt_long(easy, CURLOPT_FRESH_CONNECT, 1)
        }
        troupe_curl_setopt_string(easy, CURLOPT_USERAGENT, userAgent)
        troupe_curl_setopt_long(easy, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_2TLS))
        troupe_curl_setopt_long(easy, CURLOPT_SSL_VERIFYPEER, verifyTLS ? 1 : 0)
        troupe_curl_setopt_long(easy, CURLOPT_SSL_VERIFYHOST, verifyTLS ? 2 : 0)
        troupe_curl_setopt_long(easy, CURLOPT_FOLLOWLOCATION, request.maxRedirects > 0 ? 1 : 0)
        troupe_curl_setopt_long(easy, CURLOPT_MAXREDIRS, request.maxRedirects)
        troupe_curl_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, Self.milliseconds(connectTimeout))
        if let timeout = request.timeout ?? defaultTimeout {
            troupe_curl_setopt_long(easy, CURLOPT_TIMEOUT_MS, Self.milliseconds(timeout))
        }
        troupe_curl_setopt_string(easy, CURLOPT_ACCEPT_ENCODING, "")
        let method = request.method.uppercased()
        if method == "HEAD" {
            troupe_curl_setopt_long(easy, CURLOPT_NOBODY, 1)
        } else if method != "GET" || request.body != nil {
            troupe_curl_setopt_string(easy, CURLOPT_CUSTOMREQUEST, method)
        }
        if let body = request.body {
            troupe_curl_setopt_off_t(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count))
            body.withUnsafeBytes { bytes in
                // COPYPOSTFIELDS copies the bytes, so they need not outlive this call.
                _ = troupe_curl_setopt_pointer(easy, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!))
            }
        }
        for header in request.headers {
            headerList = curl_slist_append(headerList, "\(header.name): \(header.value)")
        }
        // No "Expect: 100-continue" round trip before bodies.
        headerList = curl_slist_append(headerList, "Expect:")
        troupe_curl_setopt_slist(easy, CURLOPT_HTTPHEADER, headerList)
        troupe_curl_setopt_write_function(easy) { data, size, count, context in
            guard let data, let context else { return 0 }
            let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
            return transfer.received(UnsafeRawBufferPointer(start: data, count: size * count))
        }
        troupe_curl_setopt_pointer(easy, CURLOPT_WRITEDATA, opaque)
        troupe_curl_setopt_header_function(easy) { data, size, count, context in
            guard let data, let context else { return 0 }
            let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
            transfer.headerLine(UnsafeRawBufferPointer(start: data, count: size * count))
            return size * count
        }
        troupe_curl_setopt_pointer(easy, CURLOPT_HEADERDATA, opaque)
        // The progress callback is the second path for cancellation: libcurl aborts the transfer when it says so.
        troupe_curl_setopt_long(easy, CURLOPT_NOPROGRESS, 0)
        troupe_curl_setopt_progress_function(easy) { context, _, _, _, _ in
            guard let context else { return 0 }
            let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
            return transfer.aborted.load(ordering: .relaxed) ? 1 : 0
        }
        troupe_curl_setopt_pointer(easy, CURLOPT_XFERINFODATA, opaque)
    }

    private func headerLine(_ bytes: UnsafeRawBufferPointer) {
        var line = String(decoding: bytes, as: UTF8.self)
        while let last = line.last, last.isNewline { line.removeLast() }
        if line.hasPrefix("HTTP/") {
            // A new response (after a redirect or a 100 Continue): start over.
            headers.removeAll()
            let parts = line.split(separator: " ", maxSplits: 2)
            status = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
        } else if let colon = line.firstIndex(of: ":") {
            let name = String(line[..<colon])
            let value = line[line.index(after: colon)...].drop { $0 == " " || $0 == "\t" }
            headers.append((name, String(value)))
        }
    }

    private func received(_ bytes: UnsafeRawBufferPointer) -> Int {
        if aborted.load(ordering: .relaxed) { return 0 }
        switch sink {
        case .collect:
            body.append(contentsOf: bytes)
        case .stream(let head, let stream):
            if !headDelivered {
                headDelivered = true
                head.resume(returning: HTTPHead(status: responseCode(), headers: headers))
            }
            stream.yield(Array(bytes))
        }
        return bytes.count
    }

    private func responseCode() -> Int {
        guard let easy else { return status }
        var code = 0
        troupe_curl_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &code)
        return code == 0 ? status : code
    }

    /// The transfer ended with `result`.
    func complete(_ result: CURLcode) {
        guard settled.compareExchange(expected: false, desired: true, ordering: .sequentiallyConsistent).exchanged else { return }
        defer { release() }
        if result == CURLE_OK {
            switch sink {
            case .collect(let continuation):
                continuation.resume(returning: HTTPResponse(status: responseCode(), headers: headers, body: body))
            case .stream(let head, let stream):
                if !headDelivered {
                    headDelivered = true
                    head.resume(returning: HTTPHead(status: responseCode(), headers: headers))
                }
                stream.finish()
            }
            return
        }
        if result == CURLE_ABORTED_BY_CALLBACK || aborted.load(ordering: .relaxed) {
            return deliver(CancellationError())
        }
        deliver(error(for: result))
    }

    private func error(for result: CURLcode) -> HTTPClientError {
        let code: HTTPClientError.Code
        switch result {
        case CURLE_OPERATION_TIMEDOUT: code = .timeout
        case CURLE_TOO_MANY_REDIRECTS: code = .tooManyRedirects
        default: code = .transport
        }
        return HTTPClientError(
            code: code,
            curlCode: Int32(result.rawValue),
            status: nil,
            url: HTTPClientError.redact(request.url),
            message: String(cString: curl_easy_strerror(result)),
            attempts: 1
        )
    }

    /// Whether a failure with this curl code may succeed if tried again.
    static func isRetriable(_ curlCode: Int32?) -> Bool {
        guard let curlCode else { return false }
        let code = CURLcode(rawValue: UInt32(curlCode))
        return [CURLE_COULDNT_CONNECT, CURLE_OPERATION_TIMEDOUT, CURLE_GOT_NOTHING, CURLE_RECV_ERROR, CURLE_SEND_ERROR,
                CURLE_PARTIAL_FILE, CURLE_COULDNT_RESOLVE_HOST, CURLE_HTTP2, CURLE_HTTP2_STREAM].contains(code)
    }

    // MARK: From any thread (before the loop owns it) or the loop thread

    func fail(_ error: any Error) {
        guard settled.compareExchange(expected: false, desired: true, ordering: .sequentiallyConsistent).exchanged else { return }
        defer { release() }
        deliver(error)
    }

    func failCancelled() { fail(CancellationError()) }

    private func deliver(_ error: any Error) {
        switch sink {
        case .collect(let continuation):
            continuation.resume(throwing: error)
        case .stream(let head, let stream):
            if !headDelivered {
                headDelivered = true
                head.resume(throwing: error)
            }
            stream.finish(throwing: error)
        }
    }

    private func release() {
        retained?.release()
        retained = nil
    }

    private static func milliseconds(_ duration: Duration) -> Int {
        Int(duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
    }
}

extension HTTPClientError {
    static func shutdown(_ url: String) -> HTTPClientError {
        HTTPClientError(code: .shutdown, curlCode: nil, status: nil, url: redact(url), message: "the HTTP client was shut down", attempts: 1)
    }
}

/// The status and header fields of a response whose body is still arriving.
public struct HTTPHead: Sendable {
    /// The status code.
    public var status: Int
    /// The header fields, in order.
    public var headers: [(name: String, value: String)]

    /// The first value of a header field, compared without case.
    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
}
