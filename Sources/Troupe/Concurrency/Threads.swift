import Glibc

/// Starts a detached POSIX thread running `body`, for the package's long-lived loops (the SQLite writer, the curl
/// loop, the loopback server's connections). They block in C calls, so they must not sit on Swift's cooperative
/// pool; and Dispatch starts threads for queues lazily and caps them, which measured as seconds of delay before
/// such a loop ran when many were blocked at once.
///
/// - Parameter name: The thread's name, as `top -H`, `ps -L` and profilers show it (at most 15 bytes, Linux's limit).
/// - Returns: `nil` once the thread runs, or the reason it could not be created (`pthread_create`'s error, such as
///   `EAGAIN` when the process has reached its thread limit). `body` never runs then: callers must not wait for it.
@discardableResult
package func startThread(named name: String, _ body: @escaping @Sendable () -> Void) -> String? {
    final class Box {
        let name: String
        let body: @Sendable () -> Void
        init(_ name: String, _ body: @escaping @Sendable () -> Void) {
            // Linux refuses names longer than 15 bytes (plus the terminating zero).
            self.name = String(decoding: name.utf8.prefix(15), as: UTF8.self)
            self.body = body
        }
    }
    var thread = pthread_t()
    let context = Unmanaged.passRetained(Box(name, body)).toOpaque()
    let created = pthread_create(&thread, nil, { context in
        let box = Unmanaged<Box>.fromOpaque(context!).takeRetainedValue()
        nameThisThread(box.name)
        box.body()
        return nil
    }, context)
    if created == 0 {
        pthread_detach(thread)
        return nil
    }
    Unmanaged<Box>.fromOpaque(context).release()
    return String(cString: strerror(created))
}

/// Names the calling thread through `/proc/thread-self/comm` (`pthread_setname_np` is not visible to Swift without
/// `_GNU_SOURCE`). Best effort: a thread without a name works the same.
private func nameThisThread(_ name: String) {
    let file = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
    guard file >= 0 else { return }
    defer { close(file) }
    var bytes = Array(name.utf8)
    _ = write(file, &bytes, bytes.count)
}
