import Foundation
import Glibc
import Synchronization
import Troupe
import TroupeTestSupport
@testable import TroupePostgres

/// A TCP proxy in front of a PostgreSQL server that can play a long crash recovery: ``recover(for:while:)`` cuts
/// every session, and for a while answers each new connection as a recovering server does (an `ErrorResponse`,
/// SQLSTATE 57P03, "the database system is starting up") before it forwards connections again.
///
/// A real recovery's length depends on the machine's load; this one's does not, so a test can make it longer than
/// the workers' fence interval on any machine.
///
/// Its sockets are close-on-exec: the servers and workers the tests start must not inherit them, or a socket the
/// proxy closes would stay open in them and its peer never see the end of the connection.
final class RecoveringProxy: Sendable {
    let port: Int
    private let upstream: Int
    private let listener: Int32
    private let state = Mutex<(closed: Bool, recovering: Bool, generation: Int, sockets: Set<Int32>)>((false, false, 0, []))
    /// Each forwarded client's server socket, and the server sockets ``cutClientsOnly()`` left open.
    private let pairs = Mutex<(servers: [Int32: Int32], orphans: Set<Int32>)>(([:], []))

    init(upstream: Int) throws {
        self.upstream = upstream
        // Non-blocking: ``acceptCloseOnExec()`` accepts only after `poll` said a connection waits, and must not
        // block while it holds the lock on starting children.
        let socket = Glibc.socket(
            AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0
        )
        var address = Self.loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard socket >= 0, bound == 0, listen(socket, 128) == 0 else {
            Glibc.close(socket)
            throw PostgresError(sqlState: "", message: "the proxy cannot listen on 127.0.0.1: \(String(cString: strerror(errno)))")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(socket, $0, &length) }
        }
        listener = socket
        port = Int(UInt16(bigEndian: address.sin_port))
        if let failure = startThread(named: "test-proxy", { [self] in acceptLoop() }) {
            Glibc.close(socket)
            throw PostgresError(sqlState: "", message: "the proxy has no thread: \(failure)")
        }
    }

    deinit { Glibc.close(listener) }

    func url(database: String = "postgres") -> String { "postgres://troupe@127.0.0.1:\(port)/\(database)" }

    /// Cuts every forwarded session, runs `restart` (the server's own restart), and answers that the server is
    /// starting up until `duration` has passed since the cut; then forwards again.
    func recover(for duration: Duration, while restart: () async throws -> Void) async throws {
        let started = ContinuousClock.now
        // Under the lock: a pump removes its sockets under it before closing them, so none is closed (and its
        // number reused elsewhere in the process) while it is shut down here.
        state.withLock { state in
            state.recovering = true
            state.generation += 1
            for socket in state.sockets { Glibc.shutdown(socket, Int32(SHUT_RDWR)) }
        }
        do {
            try await restart()
            let rest = duration - (ContinuousClock.now - started)
            if rest > .zero { try await Task.sleep(for: rest) }
        } catch {
            state.withLock { $0.recovering = false }
            throw error
        }
        state.withLock { $0.recovering = false }
    }

    /// Cuts every forwarded session on the clients' side only: each client sees its connection end, while the
    /// server's side stays open, so the server's process for it lives on, idle, holding what it held (as after a
    /// network cut that the client noticed first). Those sockets are closed by ``close()``.
    func cutClientsOnly() {
        let clients = pairs.withLock { pairs -> [Int32] in
            pairs.orphans.formUnion(pairs.servers.values)
            return Array(pairs.servers.keys)
        }
        state.withLock { state in
            for client in clients where state.sockets.contains(client) { Glibc.shutdown(client, Int32(SHUT_RDWR)) }
        }
    }

    func close() {
        pairs.withLock { pairs in
            for server in pairs.orphans { Glibc.close(server) }
            pairs.orphans = []
        }
        state.withLock { state in
            state.closed = true
            for socket in state.sockets { Glibc.shutdown(socket, Int32(SHUT_RDWR)) }
        }
        Glibc.shutdown(listener, Int32(SHUT_RDWR))
    }

    /// 127.0.0.1 at `port`.
    static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    /// Accepts one connection, close-on-exec before any child can be started (`accept4`, which would set the flag
    /// atomically, is not in Swift's Glibc module): a child started between `accept` and `fcntl` (a test's
    /// `pg_ctl restart`, whose server lives on) would hold the connection, and the peer would not see it end.
    /// Returns -1 with `errno` set once the listener is shut down.
    private func acceptCloseOnExec() -> Int32 {
        while true {
            var ready = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&ready, 1, -1) >= 0 || errno == EINTR else { return -1 }
            let (client, failure) = whileNoChildStarts { () -> (Int32, Int32) in
                let client = accept(listener, nil, nil)
                guard client >= 0 else { return (client, errno) }
                _ = fcntl(client, F_SETFD, FD_CLOEXEC)
                return (client, 0)
            }
            if client >= 0 { return client }
            // Another wake-up than a connection (or one that went away before it was accepted): poll again.
            if failure == EAGAIN || failure == EWOULDBLOCK || failure == EINTR || failure == ECONNABORTED { continue }
            errno = failure
            return -1
        }
    }

    /// Accepts connections: refused while recovering, else forwarded. A cut (``recover(for:while:)``) and the
    /// registration of a new pair exclude each other (one lock, and a generation the cut advances), so no pair
    /// escapes a cut by being set up while it happens.
    private func acceptLoop() {
        while true {
            let client = acceptCloseOnExec()
            guard client >= 0 else {
                if errno == EINTR { continue }
                return
            }
            let decision = state.withLock { state -> (closed: Bool, recovering: Bool, generation: Int) in
                if !state.closed, !state.recovering { state.sockets.insert(client) }
                return (state.closed, state.recovering, state.generation)
            }
            if decision.closed {
                Glibc.close(client)
                return
            }
            if decision.recovering {
                if startThread(named: "test-proxy", { Self.refuse(client) }) != nil { Glibc.close(client) }
                continue
            }
            let server = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var address = Self.loopback(port: upstream)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            let kept = state.withLock { state -> Bool in
                guard connected == 0, state.generation == decision.generation, !state.closed else {
                    state.sockets.remove(client)
                    return false
                }
                state.sockets.insert(server)
                return true
            }
            guard kept else {
                Glibc.close(server)
                Glibc.close(client)
                continue
            }
            pairs.withLock { $0.servers[client] = server }
            if startThread(named: "test-proxy", { [self] in pump(client, server) }) != nil {
                pairs.withLock { _ = $0.servers.removeValue(forKey: client) }
                state.withLock { $0.sockets.subtract([client, server]) }
                Glibc.close(server)
                Glibc.close(client)
            }
        }
    }

    /// Copies bytes both ways until either side closes, then closes both. Sends never raise `SIGPIPE` (it would
    /// end the test process): a closed peer is an error return.
    private func pump(_ client: Int32, _ server: Int32) {
        defer {
            let orphaned = pairs.withLock { pairs -> Bool in
                pairs.servers[client] = nil
                return pairs.orphans.contains(server)
            }
            state.withLock { $0.sockets.subtract([client, server]) }
            Glibc.close(client)
            if !orphaned { Glibc.close(server) }
        }
        var descriptors = [pollfd(fd: client, events: Int16(POLLIN), revents: 0), pollfd(fd: server, events: Int16(POLLIN), revents: 0)]
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            guard poll(&descriptors, 2, -1) > 0 else {
                if errno == EINTR { continue }
                return
            }
            for (index, descriptor) in descriptors.enumerated() where descriptor.revents != 0 {
                let from = descriptor.fd, to = index == 0 ? server : client
                let count = buffer.withUnsafeMutableBytes { read(from, $0.baseAddress, $0.count) }
                guard count > 0 else { return }
                var sent = 0
                while sent < count {
                    let written = buffer.withUnsafeBytes { send(to, $0.baseAddress! + sent, count - sent, Int32(MSG_NOSIGNAL)) }
                    guard written > 0 else { return }
                    sent += written
                }
            }
        }
    }

    /// Answers one connection as a server in crash recovery: declines SSL and GSS encryption if asked, reads the
    /// startup packet, and sends the FATAL error a starting server sends.
    private static func refuse(_ client: Int32) {
        defer { Glibc.close(client) }
        while true {
            guard let length = readInt32(client), length >= 8, length < 10_000, let code = readInt32(client) else { return }
            var rest = [UInt8](repeating: 0, count: Int(length) - 8)
            guard readFully(client, &rest) else { return }
            // SSLRequest and GSSENCRequest: "not supported here", then the client sends its startup packet.
            if code == 80_877_103 || code == 80_877_104 {
                guard send(client, [UInt8(ascii: "N")], 1, Int32(MSG_NOSIGNAL)) == 1 else { return }
                continue
            }
            break
        }
        var fields: [UInt8] = []
        for (key, value) in [("S", "FATAL"), ("V", "FATAL"), ("C", "57P03"), ("M", "the database system is starting up")] {
            fields += Array(key.utf8) + Array(value.utf8) + [0]
        }
        fields.append(0)
        let length = UInt32(fields.count + 4).bigEndian
        let message = [UInt8(ascii: "E")] + withUnsafeBytes(of: length) { Array($0) } + fields
        _ = message.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    private static func readInt32(_ socket: Int32) -> Int32? {
        var bytes = [UInt8](repeating: 0, count: 4)
        guard readFully(socket, &bytes) else { return nil }
        return Int32(bitPattern: bytes.reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
    }

    private static func readFully(_ socket: Int32, _ bytes: inout [UInt8]) -> Bool {
        var done = 0
        while done < bytes.count {
            let count = bytes.withUnsafeMutableBytes { read(socket, $0.baseAddress! + done, $0.count - done) }
            guard count > 0 else { return false }
            done += count
        }
        return true
    }
}
