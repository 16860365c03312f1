import Foundation
import Glibc
import Testing
import TroupeTestSupport

/// The tests' own `spawn`, which starts the server programs: a server daemon it leaves behind lives as long as its
/// test, so the child must get no descriptor of the test process but its standard ones.
struct SpawnTests {
    @Test func aSpawnedProgramInheritsNoDescriptorButItsStandardOnes() async throws {
        let scratch = try ScratchDirectory("troupe-spawn-")
        defer { withExtendedLifetime(scratch) {} }
        // A pipe that is not close-on-exec (as `Pipe()`'s is not), at numbers the shell does not use for its own.
        var ends: [Int32] = [0, 0]
        try #require(pipe(&ends) == 0)
        let held = ends.map { fcntl($0, F_DUPFD, 900) }
        defer { for descriptor in ends + held { close(descriptor) } }
        try #require(held.allSatisfy { $0 >= 900 })
        let listing = scratch.file("fds")
        let status = try await spawn(["sh", "-c", "ls /proc/$$/fd > \(listing)"])
        #expect(status == 0)
        let listed = try String(contentsOfFile: listing, encoding: .utf8).split(separator: "\n").compactMap { Int32($0) }
        // Before, the shell listed both ends, and every other descriptor of the test process.
        #expect(Set(listed).isDisjoint(with: held + ends.filter { $0 > 10 }), "the child had descriptors \(listed); the pipe was \(ends) and \(held)")
    }
}
