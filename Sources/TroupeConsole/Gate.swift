import Foundation
import HTTPTypes
import Hummingbird

/// Every request passes here: the token (a bearer header or the login cookie) when the console has one, the
/// read-only switch, and a header that only the console's own script sends on actions, so that another web page
/// open in the same browser cannot post to a console on 127.0.0.1 (a cross-site form cannot set it, and a script
/// would need a CORS preflight the console never grants). Counts requests for `/metrics`.
struct Gate: RouterMiddleware {
    typealias Context = BasicRequestContext

    static let cookie = "troupe_token"
    /// The header actions must carry: `X-Troupe: action`.
    static let actionHeader = HTTPField.Name("X-Troupe")!

    let token: String?
    let readOnly: Bool
    let metrics: ConsoleMetrics

    // `@concurrent`: the protocol comes from a module built without NonisolatedNonsendingByDefault.
    @concurrent func handle(
        _ request: Request,
        context: Context,
        next: @concurrent (Request, Context) async throws -> Response
    ) async throws -> Response {
        let clock = ContinuousClock()
        let started = clock.now
        let response = try await decide(request, context: context, next: next)
        metrics.request(method: request.method.rawValue, status: response.status.code, after: clock.now - started)
        return response
    }

    private func decide(
        _ request: Request,
        context: Context,
        next: @concurrent (Request, Context) async throws -> Response
    ) async throws -> Response {
        let path = request.uri.path
        if let token, path != "/login", path != "/style.css", !presents(request, token) {
            if path.hasPrefix("/api/") || path == "/metrics" || request.method != .get {
                return ConsoleServer.json(
                    ["error": "this console needs its token: send `Authorization: Bearer TOKEN`, or log in at /login"],
                    status: .unauthorized
                )
            }
            return Response(status: .seeOther, headers: [.location: "/login"])
        }
        if request.method == .post, path.hasPrefix("/api/") {
            if readOnly {
                return ConsoleServer.json(["error": "this console is read-only (troupe serve --read-only): use the CLI to act"], status: .forbidden)
            }
            guard request.headers[Self.actionHeader] == "action" else {
                return ConsoleServer.json(
                    ["error": "an action must carry the header `X-Troupe: action` (the console's pages send it)"],
                    status: .forbidden
                )
            }
        }
        return try await next(request, context)
    }

    private func presents(_ request: Request, _ token: String) -> Bool {
        if let header = request.headers[.authorization], header.hasPrefix("Bearer "),
            Self.same(String(header.dropFirst("Bearer ".count)), token)
        {
            return true
        }
        if let cookie = request.cookies[Self.cookie], Self.same(cookie.value, token) { return true }
        return false
    }

    /// Compares in time that depends on the lengths only, not on where the first difference is.
    static func same(_ given: String, _ token: String) -> Bool {
        let a = Array(given.utf8)
        let b = Array(token.utf8)
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}
