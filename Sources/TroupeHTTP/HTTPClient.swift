import CCurl
import FoundationEssentials
import Glibc
public import ServiceLifecycle
import Synchronization
import Troupe
import Tracing

/// An async HTTP client over libcurl's multi interface, driven by a thread of its own.
///
/// ```swift
/// let client = HTTPClient()
/// let response = try await client.execute(.get("https://api.example.com/quotes"))
/// let quotes = try response.decode([Quote].self)
/// ```
///
/// - Connections are reused across requests (libcurl's connection cache); HTTP/2 is used where the server offers
///   it over TLS. TLS certificates are verified unless ``Configuration/verifyTLS`` is turned off.
/// - Cancelling the awaiting task aborts the transfer: the client's thread removes it from libcurl as soon as it
///   wakes, and the call throws `CancellationError`.
/// - ``execute(_:)`` retries by the request's ``RetryPolicy`` and throws ``HTTPClientError`` for every failure,
///   error statuses (≥ 400) included.
/// - ``stream(_:)`` hands the body over as it arrives; ``ServerSentEvents`` parses event streams (LLM tokens).
///
/// It is a swift-service-lifecycle `Service`: run it in the same `ServiceGroup` as the ``Troupe/Run`` so that it
/// shuts down with the tree. Agents reach it as `context.http` when it is in the run's
/// ``Troupe/Run/Configuration/services``.
public final class HTTPClient: Service, Sendable {
    /// How the client behaves.
    public struct Configuration: Sendable {
        /// The deadline of a whole transfer when the request sets none; `nil` for none.
        public var timeout: Duration?
        /// The deadline for connecting.
        public var connectTimeout: Duration
        /// Whether to verify TLS certificates and host names. Keep it on outside tests.
        public var verifyTLS: Bool
        /// The retry policy of requests that set none.
        public var retry: RetryPolicy
        /// Connections kept per host at most.
        public var maxConnectionsPerHost: Int
        /// The `User-Agent` header.
        public var userAgent: String

        /// Creates a configuration.
        public init(
            timeout: Duration? = .seconds(60),
            connectTimeout: Duration = .seconds(10),
            verifyTLS: Bool = true,
            retry: RetryPolicy = .default,
            maxConnectionsPerHost: Int = 64,
            userAgent: String = "troupe"
        ) {
            self.timeout = timeout
            self.connectTimeout = connectTimeout
            self.verifyTLS = verifyTLS
            self.retry = retry
            self.maxConnectionsPerHost = maxConnectionsPerHost
            self.userAgent = userAgent
        }
    }

    /// The configuration.
    public let configuration: Configuration
    private let loop: CurlLoop

    /// Creates a client and starts its thread.
    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        self.loop = CurlLoop(maxConnectionsPerHost: configuration.maxConnectionsPerHost)
    }

    /// Runs until graceful shutdown, then shuts the client down and waits for its thread to end. See `Service`.
    public func run() async throws {
        try? await gracefulShutdown()
        shutdown()
        await loop.ended.wait()
    }

    /// Aborts every transfer (they fail with ``HTTPClientError/Code/shutdown``) and stops the client's thread.
    ///
    /// Returns at once, without waiting for the thread: it never blocks a task's thread, so it is safe in an
    /// asynchronous function's `defer`. Requests made after it fail with ``HTTPClientError/Code/shutdown``.
    public func shutdown() {
        loop.stop()
    }

    // MARK: Requests

    /// Sends a request and reads the whole response, retrying by the request's (or the client's) policy.
    ///
    /// - Returns: The response, whose status is below 400.
    /// - Throws: ``HTTPClientError`` (with the curl code or the status), or `CancellationError`.
    public func execute(_ request: HTTPRequest) async throws -> HTTPResponse {
        let policy = request.retry ?? configuration.retry
        var attempt = 1
        while true {
            let outcome: Result<HTTPResponse, any Error>
            do {
                outcome = .success(try await once(request))
            } catch {
                outcome = .failure(error)
            }
            switch outcome {
            case .success(let response) where response.status < 400:
                return response
            case .success(let response):
                let statusError = HTTPClientError(
                    code: .status,
                    curlCode: nil,
                    status: response.status,
                    url: HTTPClientError.redact(request.url),
                    message: "the server answered \(response.status): \(String(response.text.prefix(200)))",
                    attempts: attempt
                )
                guard attempt < policy.attempts, Self.isRetriable(status: response.status, request) else { throw statusError }
                try await Task.sleep(for: policy.delay(after: attempt, retryAfter: Self.retryAfter(response.header("Retry-After"))))
            case .failure(var error as HTTPClientError):
                error.attempts = attempt
                guard attempt < policy.attempts, request.isIdempotent, Transfer.isRetriable(error.curlCode) else { throw error }
                try await Task.sleep(for: policy.delay(after: attempt, retryAfter: nil))
            case .failure(let error):
                throw error
            }
            attempt += 1
        }
    }

    /// Sends a request and returns as soon as the response's head has arrived; the body follows as chunks.
    ///
    /// Retries (by the policy) happen only before the head arrives. There is no backpressure inside a response:
    /// chunks wait in memory until read, which suits token streams and modest downloads.
    ///
    /// - Throws: ``HTTPClientError`` (an error status included), or `CancellationError`.
    public func stream(_ request: HTTPRequest) async throws -> HTTPStreamedResponse {
        let policy = request.retry ?? configuration.retry
        var attempt = 1
        while true {
            do {
                let response = try await streamOnce(request)
                guard response.head.status >= 400 else { return response }
                let error = HTTPClientError(
                    code: .status, curlCode: nil, status: response.head.status, url: HTTPClientError.redact(request.url),
                    message: "the server answered \(response.head.status)", attempts: attempt
                )
                guard attempt < policy.attempts, Self.isRetriable(status: response.head.status, request) else { throw error }
                try await Task.sleep(for: policy.delay(after: attempt, retryAfter: Self.retryAfter(response.head.header("Retry-After"))))
            } catch var error as HTTPClientError where error.code != .status {
                error.attempts = attempt
                guard attempt < policy.attempts, request.isIdempotent, Transfer.isRetriable(error.curlCode) else { throw error }
                try await Task.sleep(for: policy.delay(after: attempt, retryAfter: nil))
            }
            attempt += 1
        }
    }

    /// One attempt, recorded in the metrics (``ProcessMetrics/http(method:status:duration:)``), and in a span when
    /// an agent of a traced run makes it.
    private func once(_ request: HTTPRequest) async throws -> HTTPResponse {
        guard let tracing = EngineTracing.current else { return try await measured(request) }
        return try await tracing.span("HTTP \(request.method)", kind: .client) { span in
            let request = Self.carrying(span, of: tracing, request)
            let response = try await measured(request)
            span.attributes["http.response.status_code"] = response.status
            return response
        }
    }

    /// `request` with the span's context in its headers (W3C `traceparent` with an OpenTelemetry tracer) and the
    /// span's request attributes set.
    static func carrying(_ span: any Span, of tracing: EngineTracing, _ request: HTTPRequest) -> HTTPRequest {
        var request = request
        tracing.tracer.inject(span.context, into: &request.headers, using: HeaderInjector())
        span.attributes["http.request.method"] = request.method
        span.attributes["url.full"] = HTTPClientError.redact(request.url)
        return request
    }

    private func measured(_ request: HTTPRequest) async throws -> HTTPResponse {
        let started = ContinuousClock.now
        do {
            let response = try await attempt(request)
            ProcessMetrics.http(method: request.method, status: response.status, duration: ContinuousClock.now - started)
            return response
        } catch {
            ProcessMetrics.http(method: request.method, status: nil, duration: ContinuousClock.now - started)
            throw error
        }
    }

    private func attempt(_ request: HTTPRequest) async throws -> HTTPResponse {
        let loop = self.loop
        let box = TransferBox()
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<HTTPResponse, any Error>) in
                let transfer = makeTransfer(request, sink: .collect(continuation))
                box.set(transfer)
                if Task.isCancelled { transfer.failCancelled() } else { loop.start(transfer) }
            }
        } onCancel: {
            box.cancel(on: loop)
        }
    }

    /// One attempt, recorded in the metrics once its head arrived (its duration is the time to the head), and in a
    /// span (to the head) when an agent of a traced run makes it.
    private func streamOnce(_ request: HTTPRequest) async throws -> HTTPStreamedResponse {
        guard let tracing = EngineTracing.current else { return try await streamMeasured(request) }
        return try await tracing.span("HTTP \(request.method)", kind: .client) { span in
            let response = try await streamMeasured(Self.carrying(span, of: tracing, request))
            span.attributes["http.response.status_code"] = response.head.status
            return response
        }
    }

    private func streamMeasured(_ request: HTTPRequest) async throws -> HTTPStreamedResponse {
        let started = ContinuousClock.now
        do {
            let response = try await streamAttempt(request)
            ProcessMetrics.http(method: request.method, status: response.head.status, duration: ContinuousClock.now - started)
            return response
        } catch {
            ProcessMetrics.http(method: request.method, status: nil, duration: ContinuousClock.now - started)
            throw error
        }
    }

    private func streamAttempt(_ request: HTTPRequest) async throws -> HTTPStreamedResponse {
        let loop = self.loop
        let box = TransferBox()
        let (body, continuation) = AsyncThrowingStream<[UInt8], any Error>.makeStream()
        continuation.onTermination = { reason in
            // The reader went away (or was cancelled): stop downloading.
            if case .cancelled = reason { box.cancel(on: loop) }
        }
        let head = try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (head: UnsafeContinuation<HTTPHead, any Error>) in
                let transfer = makeTransfer(request, sink: .stream(head: head, body: continuation))
                box.set(transfer)
                if Task.isCancelled { transfer.failCancelled() } else { loop.start(transfer) }
            }
        } onCancel: {
            box.cancel(on: loop)
        }
        return HTTPStreamedResponse(head: head, body: HTTPBody(base: body))
    }

    private func makeTransfer(_ request: HTTPRequest, sink: Transfer.Sink) -> Transfer {
        Transfer(
            request: request,
            sink: sink,
            defaultTimeout: configuration.timeout,
            connectTimeout: configuration.connectTimeout,
            verifyTLS: configuration.verifyTLS,
            userAgent: configuration.userAgent
        )
    }

    static func isRetriable(status: Int, _ request: HTTPRequest) -> Bool {
        // 429 and 503 say the request was not processed; other 5xx only for requests safe to repeat.
        status == 429 || status == 503 || (request.isIdempotent && (status == 502 || status == 504 || status == 500))
    }

    /// `Retry-After` as seconds or an HTTP date (RFC 9110 §10.2.3).
    static func retryAfter(_ value: String?) -> Duration? {
        guard let value = value.map({ String($0.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed()) }), !value.isEmpty else {
            return nil
        }
        if let seconds = Int(value) { return .seconds(max(0, seconds)) }
        // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT".
        let fields = value.split(separator: " ")
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        guard fields.count == 6, let day = Int32(fields[1]), let month = months.firstIndex(of: String(fields[2])),
            let year = Int32(fields[3])
        else { return nil }
        let clock = fields[4].split(separator: ":").compactMap { Int32($0) }
        guard clock.count == 3 else { return nil }
        var parts = tm()
        parts.tm_year = year - 1900
        parts.tm_mon = Int32(month)
        parts.tm_mday = day
        parts.tm_hour = clock[0]
        parts.tm_min = clock[1]
        parts.tm_sec = clock[2]
        let date = timegm(&parts)
        return .seconds(max(0, Int(date) - Int(time(nil))))
    }
}

/// The transfer behind a request, for the cancellation handler (which may run before it exists).
final class TransferBox: Sendable {
    private let state = Mutex<(transfer: Transfer?, cancelled: Bool)>((nil, false))

    func set(_ transfer: Transfer) {
        let cancelled = state.withLock { state -> Bool in
            state.transfer = transfer
            return state.cancelled
        }
        if cancelled { transfer.aborted.store(true, ordering: .sequentiallyConsistent) }
    }

    func cancel(on loop: CurlLoop) {
        let transfer = state.withLock { state -> Transfer? in
            state.cancelled = true
            return state.transfer
        }
        if let transfer { loop.cancel(transfer) }
    }
}

/// A response whose body is still arriving.
public struct HTTPStreamedResponse: Sendable {
    /// The status and header fields.
    public var head: HTTPHead
    /// The body, in chunks as they arrive.
    public var body: HTTPBody
}

/// A response body as an asynchronous sequence of byte chunks. Dropping the iteration early aborts the transfer.
public struct HTTPBody: AsyncSequence, Sendable {
    public typealias Element = [UInt8]
    let base: AsyncThrowingStream<[UInt8], any Error>

    public func makeAsyncIterator() -> AsyncThrowingStream<[UInt8], any Error>.Iterator { base.makeAsyncIterator() }

    /// Reads the rest of the body into one array.
    public func collect() async throws -> [UInt8] {
        var bytes: [UInt8] = []
        for try await chunk in base { bytes.append(contentsOf: chunk) }
        return bytes
    }
}

/// Puts a span's context into a request's headers.
struct HeaderInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout [(name: String, value: String)]) {
        carrier.append((key, value))
    }
}
