import FoundationEssentials

/// An HTTP request for ``HTTPClient``.
///
/// ```swift
/// var request = HTTPRequest.get("https://api.example.com/quotes?symbol=ACME")
/// request.headers.append(("Accept", "application/json"))
/// let response = try await client.execute(request)
/// ```
public struct HTTPRequest: Sendable {
    /// The method: `GET`, `POST`, …
    public var method: String
    /// The absolute URL.
    public var url: String
    /// Header fields, in order.
    public var headers: [(name: String, value: String)]
    /// The body, if any.
    public var body: [UInt8]?
    /// The whole transfer's deadline, or `nil` for the client's default.
    public var timeout: Duration?
    /// How many redirects to follow (0: none). A loop, or more hops, fails with ``HTTPClientError/Code/tooManyRedirects``.
    public var maxRedirects: Int
    /// Retries on failure; `nil` for the client's default policy.
    public var retry: RetryPolicy?

    /// Creates a request.
    public init(
        method: String = "GET",
        url: String,
        headers: [(name: String, value: String)] = [],
        body: [UInt8]? = nil,
        timeout: Duration? = nil,
        maxRedirects: Int = 5,
        retry: RetryPolicy? = nil
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.maxRedirects = maxRedirects
        self.retry = retry
    }

    /// A `GET` request.
    public static func get(_ url: String, headers: [(name: String, value: String)] = []) -> HTTPRequest {
        HTTPRequest(url: url, headers: headers)
    }

    /// A `POST` request with a JSON body (and `Content-Type: application/json`).
    ///
    /// - Throws: The encoder's error.
    public static func post(_ url: String, json value: some Encodable, headers: [(name: String, value: String)] = []) throws
        -> HTTPRequest
    {
        HTTPRequest(
            method: "POST",
            url: url,
            headers: [("Content-Type", "application/json")] + headers,
            body: Array(try JSONEncoder().encode(value))
        )
    }

    /// Whether repeating the request is harmless by HTTP's definition (RFC 9110 §9.2.2).
    public var isIdempotent: Bool {
        ["GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"].contains(method.uppercased())
    }
}

/// An HTTP response, with its body read in full.
public struct HTTPResponse: Sendable {
    /// The status code of the final response (after redirects).
    public var status: Int
    /// The final response's header fields, in order.
    public var headers: [(name: String, value: String)]
    /// The body.
    public var body: [UInt8]

    /// Creates a response.
    public init(status: Int, headers: [(name: String, value: String)], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The first value of a header field, compared without case.
    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    /// The body as UTF-8 text.
    public var text: String { String(decoding: body, as: UTF8.self) }

    /// Decodes the body as JSON.
    ///
    /// - Throws: The decoder's error.
    public func decode<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(body))
    }
}

/// When and how ``HTTPClient`` tries a request again.
///
/// Retried: transport failures (connection refused or reset, timeouts, an empty or cut-off response) of idempotent
/// requests, and `429 Too Many Requests` / `503 Service Unavailable` answers to any request (the server says it did
/// not process it), waiting what `Retry-After` asks when it says (capped at ``maxDelay``).
///
/// A non-idempotent request (`POST`, `PATCH`) is sent on a connection of its own, so it reaches the server at most
/// once per attempt, and a transport failure never retries it. An idempotent request reuses kept-alive
/// connections; when the one it reused turns out to have been closed by the server before it answered, libcurl
/// sends that attempt once more on a new connection (as browsers do), so the server may see up to one request
/// more than ``attempts``.
public struct RetryPolicy: Sendable, Hashable {
    /// Attempts in all, the first included. 1: never retry.
    public var attempts: Int
    /// The wait before the first retry; it doubles with each retry.
    public var initialDelay: Duration
    /// The longest wait between attempts.
    public var maxDelay: Duration
    /// The share of each wait drawn at random (0.2: ±20 %), so that clients do not retry in step.
    public var jitter: Double

    /// Creates a policy.
    public init(attempts: Int = 3, initialDelay: Duration = .milliseconds(100), maxDelay: Duration = .seconds(5), jitter: Double = 0.2) {
        precondition(attempts >= 1, "a retry policy needs at least one attempt (got \(attempts))")
        self.attempts = attempts
        self.initialDelay = initialDelay
        self.maxDelay = maxDelay
        self.jitter = jitter
    }

    /// The default: 3 attempts, 100 ms doubling to 5 s, ±20 %.
    public static let `default` = RetryPolicy()
    /// One attempt only.
    public static let never = RetryPolicy(attempts: 1)

    /// The wait before attempt `attempt + 1` (attempt counts from 1).
    func delay(after attempt: Int, retryAfter: Duration?) -> Duration {
        if let retryAfter { return min(retryAfter, maxDelay) }
        let base = initialDelay * (1 << min(attempt - 1, 30))
        let capped = min(base, maxDelay)
        let spread = Double.random(in: -jitter...jitter)
        return capped * (1 + spread)
    }
}

/// Why an HTTP call failed: the curl code or the HTTP status, and the URL (without credentials or query values).
public struct HTTPClientError: Error, Sendable, CustomStringConvertible, Hashable {
    /// The kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let value: String
        private init(_ value: String) { self.value = value }
        public var description: String { value }

        /// The transfer failed below HTTP (DNS, connect, TLS, reset, cut-off body): see ``HTTPClientError/curlCode``.
        public static let transport = Code("transport")
        /// The transfer took longer than its timeout.
        public static let timeout = Code("timeout")
        /// More redirects than allowed, or a redirect loop.
        public static let tooManyRedirects = Code("tooManyRedirects")
        /// The server answered with an error status that retries did not get past: see ``HTTPClientError/status``.
        public static let status = Code("status")
        /// The client was shut down.
        public static let shutdown = Code("shutdown")
    }

    /// The kind of failure.
    public var code: Code
    /// libcurl's `CURLcode`, for transport failures.
    public var curlCode: Int32?
    /// The HTTP status, for ``Code/status``.
    public var status: Int?
    /// The URL, with user information removed and query values replaced by `…`.
    public var url: String
    /// What went wrong, in words.
    public var message: String
    /// How many attempts were made.
    public var attempts: Int

    public var description: String {
        var text = "HTTP request to \(url) failed (\(code)"
        if let curlCode { text += ", curl code \(curlCode)" }
        if let status { text += ", status \(status)" }
        text += "): \(message)"
        if attempts > 1 { text += " after \(attempts) attempts" }
        return text
    }

    public static func == (lhs: HTTPClientError, rhs: HTTPClientError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    /// `url` without `user:password@` and with query values hidden, fit for logs and errors.
    static func redact(_ url: String) -> String {
        var text = url
        if let scheme = text.firstRange(of: "://"), let at = text[scheme.upperBound...].firstIndex(of: "@"),
            !text[scheme.upperBound..<at].contains("/")
        {
            text.removeSubrange(scheme.upperBound...at)
        }
        if let question = text.firstIndex(of: "?") {
            let query = text[text.index(after: question)...].split(separator: "&").map { pair in
                pair.split(separator: "=", maxSplits: 1).first.map { "\($0)=…" } ?? "…"
            }
            text = String(text[...question]) + query.joined(separator: "&")
        }
        return text
    }
}
