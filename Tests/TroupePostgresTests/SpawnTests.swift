import Foundation
import Testing
import TroupeTestSupport

/// The tests' own `spawn`, which starts the server programs: a server daemon it leaves behind lives as long as its
/// test, so the child must get no descriptor of the test process but its standard ones.
struct SpawnTests {
    @Test func aSpawnedProgramInheritsNoDescriptorButItsStandardOnes() async throws {
        let scratch = try ScratchDirectory("troupe-spawn-")
        defer { withExtendedLifetime(scratch) {} }
        // `Pipe()` is not close-on-exec: before, the shell below listed both of its ends.
        let pipe = Pipe()
        let listing = scratch.file("fds")
        let status = try await spawn(["sh", "-c", "ls /proc/$$/fd > \(listing)"])
        #expect(status == 0)
        let listed = try String(contentsOfFile: listing, encoding: .utf8).split(separator: "\n").compactMap { Int32($0) }
        #expect(Set(listed) == [0, 1, 2], "the child had descriptors \(listed); the test process had \(openDescriptorsFrom3())")
        withExtendedLifetime(pipe) {}
    }
}
