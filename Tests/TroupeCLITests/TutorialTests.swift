import Foundation
import Testing
import TroupeTestSupport

/// The DocC tutorial "Your first durable agent" (`Sources/Troupe/Documentation.docc/Tutorials`): its first files are
/// what `troupe init` writes, every file it names exists, and its final code type-checks against the built modules.
/// CI also builds the tutorial's final package, runs it and runs its tests (`.ci/run`).
@Suite(.serialized, .timeLimit(.minutes(4)))
struct TutorialTests {
    static let catalog = URL(fileURLWithPath: InitTests.checkout).appendingPathComponent("Sources/Troupe/Documentation.docc").path
    static let resources = catalog + "/Resources"

    func resource(_ name: String) throws -> String {
        try String(contentsOfFile: Self.resources + "/" + name, encoding: .utf8)
    }

    @Test func theTutorialStartsFromWhatInitWrites() async throws {
        let scratch = try ScratchDirectory("troupe-tutorial-")
        let result = try await Troupe.run("init", "hello-agents", "--directory", scratch.path, "--troupe", InitTests.checkout)
        #expect(result.status == 0, "\(result.stderr)")
        let root = scratch.path + "/hello-agents"
        let checkout = URL(fileURLWithPath: InitTests.checkout).standardizedFileURL.path
        let written = try String(contentsOfFile: root + "/Package.swift", encoding: .utf8)
        #expect(written.replacingOccurrences(of: "path: \"\(checkout)\"", with: "path: \"/path/to/troupe\"") == (try resource("first-agent-02-package.swift")))
        for (file, shown) in [
            ("Sources/HelloAgentsAgents/Greeter.swift", "first-agent-03-greeter.swift"),
            ("Sources/hello-agents/main.swift", "first-agent-04-main.swift"),
            ("Tests/HelloAgentsAgentsTests/GreeterTests.swift", "first-agent-05-tests.swift"),
        ] {
            #expect(try String(contentsOfFile: root + "/" + file, encoding: .utf8) == (try resource(shown)), "\(shown) differs from what init writes as \(file)")
        }
        // What the tutorial shows init printing is what it prints, in another directory.
        let shown = try resource("first-agent-01-init.txt")
        let printed = result.stdout.replacingOccurrences(of: scratch.path, with: "")
        let expected = shown.components(separatedBy: "\n").drop { !$0.hasPrefix("troupe: created") }
            .prefix { !$0.hasPrefix("$ ") }.map { $0 + "\n" }.joined().replacingOccurrences(of: "/root/src", with: "")
        #expect(printed == expected, "the tutorial's init output differs:\n\(printed)")
    }

    @Test func everyFileTheTutorialNamesExistsAndEveryResourceIsShown() throws {
        let tutorials = try FileManager.default.contentsOfDirectory(atPath: Self.catalog + "/Tutorials")
        var named = Set<String>()
        for tutorial in tutorials where tutorial.hasSuffix(".tutorial") {
            let text = try String(contentsOfFile: Self.catalog + "/Tutorials/" + tutorial, encoding: .utf8)
            let pattern = /(?:file|previousFile|source): "([^"]+)"/
            for match in text.matches(of: pattern) { named.insert(String(match.1)) }
        }
        let present = Set(try FileManager.default.contentsOfDirectory(atPath: Self.resources).filter { $0.hasPrefix("first-agent-") })
        #expect(!named.isEmpty)
        #expect(named.subtracting(present).isEmpty, "named but missing: \(named.subtracting(present).sorted())")
        #expect(present.subtracting(named).isEmpty, "never shown: \(present.subtracting(named).sorted())")
    }

    /// The final agents with the final binary, and with the final tests, each as one module (the import of the
    /// agents' module dropped: here they are that module).
    @Test func theTutorialsFinalCodeTypeChecks() async throws {
        let scratch = try ScratchDirectory("troupe-tutorial-")
        func copy(_ name: String, as file: String) throws -> String {
            let text = try resource(name).components(separatedBy: "\n").filter { $0 != "import HelloAgentsAgents" }.joined(separator: "\n")
            let path = scratch.file(file)
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        let agents = [try copy("first-agent-08-tally.swift", as: "Tally.swift"), try copy("first-agent-09-greeter.swift", as: "Greeter.swift")]
        let binary = try await swiftTypecheck(agents + [try copy("first-agent-10-main.swift", as: "main/main.swift")])
        #expect(binary.status == 0, "\(binary.stderr)")
        let tests = try await swiftTypecheck(agents + [try copy("first-agent-12-tests.swift", as: "GreeterTests.swift")])
        #expect(tests.status == 0, "\(tests.stderr)")
    }
}
