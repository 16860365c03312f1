import Foundation
import Testing
import TroupeTestSupport

/// `troupe init`: the starter package. CI builds the package it writes, runs its binary and its tests
/// (`.ci/run`); here, what it writes and what it refuses.
@Suite(.timeLimit(.minutes(3)))
struct InitTests {
    /// The checkout the tests were built from: four levels above this file.
    static let checkout = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    @Test func initWritesAPackageWithAnAgentABinaryAndATest() async throws {
        let scratch = try ScratchDirectory("troupe-init-")
        let result = try await Troupe.run("init", "hello-agents", "--directory", scratch.path, "--troupe", Self.checkout)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("swift run hello-agents run hello --id first"), "\(result.stdout)")
        let root = scratch.path + "/hello-agents"
        for file in [
            "Package.swift", "Sources/HelloAgentsAgents/Greeter.swift", "Sources/hello-agents/main.swift",
            "Tests/HelloAgentsAgentsTests/GreeterTests.swift", ".gitignore",
        ] {
            #expect(FileManager.default.fileExists(atPath: root + "/" + file), "missing \(file)")
        }
        let manifest = try String(contentsOfFile: root + "/Package.swift", encoding: .utf8)
        #expect(manifest.contains(#".package(name: "troupe", path: "\#(URL(fileURLWithPath: Self.checkout).standardizedFileURL.path)")"#), "\(manifest)")
        #expect(manifest.contains(#".product(name: "TroupeCLI", package: "troupe")"#))
        #expect(manifest.contains(#".product(name: "TroupeTestKit", package: "troupe")"#))
        let main = try String(contentsOfFile: root + "/Sources/hello-agents/main.swift", encoding: .utf8)
        #expect(main.contains("await TroupeCommand.main(blueprints: [hello])"))
        // The agent's file type-checks against the built Troupe module.
        let checked = try await swiftTypecheck([root + "/Sources/HelloAgentsAgents/Greeter.swift"])
        #expect(checked.status == 0, "\(checked.stderr)")

        // A second init over it refuses, and changes nothing.
        let again = try await Troupe.run("init", "hello-agents", "--directory", scratch.path, "--troupe", Self.checkout)
        #expect(again.status == 64 && again.stderr.contains("exists already"), "\(again.stderr)")
        #expect(try String(contentsOfFile: root + "/Package.swift", encoding: .utf8) == manifest)
    }

    @Test func aGitURLBecomesAVersionedDependency() async throws {
        let scratch = try ScratchDirectory("troupe-init-")
        let result = try await Troupe.run("init", "orders", "--directory", scratch.path, "--troupe", "https://example.com/troupe.git")
        #expect(result.status == 0, "\(result.stderr)")
        let manifest = try String(contentsOfFile: scratch.path + "/orders/Package.swift", encoding: .utf8)
        #expect(manifest.contains(#".package(name: "troupe", url: "https://example.com/troupe.git", from: "0.1.0")"#), "\(manifest)")
    }

    @Test func badNamesAndPlacesAreRefused() async throws {
        let scratch = try ScratchDirectory("troupe-init-")
        let badName = try await Troupe.run("init", "9lives", "--directory", scratch.path)
        #expect(badName.status == 64 && badName.stderr.contains("a package's name is a letter"), "\(badName.stderr)")
        let notTroupe = try await Troupe.run("init", "orders", "--directory", scratch.path, "--troupe", scratch.path)
        #expect(notTroupe.status == 64 && notTroupe.stderr.contains("is no Troupe checkout"), "\(notTroupe.stderr)")
        #expect(!FileManager.default.fileExists(atPath: scratch.path + "/orders"), "a refused init left a directory")
    }
}
