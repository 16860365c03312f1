import Synchronization
public import TroupeHTTPTesting

/// Where an agent's remote service lives, resolved when the agent first needs it rather than when its blueprint
/// is built.
///
/// Building a blueprint has no side effects: `troupe blueprints`, a detaching parent or a validation pass can
/// build one without opening a socket. A URL given by the operator is a plain ``init(_:)``; the gallery's offline
/// stand-ins are ``offline(_:path:)``, which start their loopback server on first use.
public struct ServiceURL: Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
    private let resolver: @Sendable () throws -> String
    private let text: String

    /// A fixed URL.
    public init(_ url: String) {
        resolver = { url }
        text = url
    }

    public init(stringLiteral url: String) { self.init(url) }

    /// A URL on a loopback server that starts the first time any agent resolves it, and then serves this process.
    ///
    /// - Parameters:
    ///   - server: The server to start lazily.
    ///   - path: Appended to the server's base URL, such as `/quotes`.
    public static func offline(_ server: LazyLoopbackServer, path: String = "") -> ServiceURL {
        ServiceURL(resolver: { try server.url(path) }, text: "(a loopback server in this process)\(path)")
    }

    private init(resolver: @escaping @Sendable () throws -> String, text: String) {
        self.resolver = resolver
        self.text = text
    }

    /// The URL, starting its server if this is the first use.
    ///
    /// - Throws: ``TroupeHTTPTesting/LoopbackServer/StartError`` if a lazily started server cannot listen.
    public func resolve() throws -> String { try resolver() }

    public var description: String { text }
}

/// A ``TroupeHTTPTesting/LoopbackServer`` that starts on its first ``url(_:)`` and then lives as long as this value.
public final class LazyLoopbackServer: Sendable {
    private let make: @Sendable () throws -> LoopbackServer
    private let started = Mutex<LoopbackServer?>(nil)

    /// - Parameter make: Starts the server; called once, on the first ``url(_:)``.
    public init(_ make: @escaping @Sendable () throws -> LoopbackServer) {
        self.make = make
    }

    /// Whether the server has started (a blueprint build must leave this `false`).
    public var isStarted: Bool { started.withLock { $0 != nil } }

    /// The URL of `path` on the server, starting it first if needed.
    public func url(_ path: String = "/") throws -> String {
        try started.withLock { server in
            if let server { return server.url(path) }
            let fresh = try make()
            server = fresh
            return fresh.url(path)
        }
    }
}
