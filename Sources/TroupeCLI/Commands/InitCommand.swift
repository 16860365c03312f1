import ArgumentParser
import Foundation
import Troupe

/// `troupe init NAME`: a new package with one durable agent, its blueprint, its own operator binary and a test.
struct InitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a package with a durable agent of your own, its operator binary and a test.",
        discussion: """
            Writes NAME/ with Package.swift (Troupe as a dependency), Sources/<Name>Agents/Greeter.swift (a durable \
            agent that greets on a durable timer and its blueprint), Sources/NAME/main.swift (your own `troupe`, \
            with every verb and your blueprint), Tests/<Name>AgentsTests/GreeterTests.swift (a test with \
            TroupeTestKit) and a .gitignore. Then:

              cd NAME && swift run NAME run hello --id first   # greets every second; kill -9 it half way
              swift run NAME resume first                      # it greets on from where it was
              swift test

            Troupe is found where this binary was built from (--troupe overrides: a path to a checkout, or a git \
            URL, used with `from: "\(TroupeRelease.version)"`).
            """
    )

    @Argument(help: "The package's name: a letter, then letters, digits, '-' or '_'.") var name: String
    @Option(help: ArgumentHelp("Where Troupe comes from: a checkout's path, or a git URL.", valueName: "path-or-url")) var troupe: String?
    @Option(help: ArgumentHelp("The directory to create the package in.", valueName: "path")) var directory: String = "."

    func validate() throws {
        guard let first = name.unicodeScalars.first, first.isASCII, first.properties.isAlphabetic, name.count <= 64,
            name.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-" || $0 == "_") })
        else {
            throw ValidationError("a package's name is a letter, then up to 63 letters, digits, '-' or '_', not '\(name)'")
        }
    }

    func run() async throws {
        let root = URL(fileURLWithPath: directory).appendingPathComponent(name)
        if FileManager.default.fileExists(atPath: root.path) {
            throw ValidationError("\(root.path) exists already; choose another name, or remove it first")
        }
        let dependency = try Self.dependency(troupe)
        let module = Self.moduleName(name)
        let files: [(String, String)] = [
            ("Package.swift", Starter.package(name: name, module: module, dependency: dependency)),
            ("Sources/\(module)Agents/Greeter.swift", Starter.agent),
            ("Sources/\(name)/main.swift", Starter.main(module: module)),
            ("Tests/\(module)AgentsTests/GreeterTests.swift", Starter.test(module: module)),
            (".gitignore", ".build/\nPackage.resolved\n.troupe/\n"),
        ]
        for (path, text) in files {
            let file = root.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
            try text.write(to: file, atomically: true, encoding: .utf8)
        }
        say("troupe: created package '\(name)' in \(root.path)")
        say("next:")
        say("  cd \(root.path)")
        let steps = [
            ("swift run \(name) run hello --id first", "greets every second; kill -9 it half way"),
            ("swift run \(name) resume first", "it greets on from where it was"),
            ("swift test", "its tests, with TroupeTestKit"),
        ]
        let width = steps.map(\.0.count).max() ?? 0
        for (command, comment) in steps {
            say("  " + command.padding(toLength: width + 3, withPad: " ", startingAt: 0) + "# " + comment)
        }
    }

    /// The package's `.package(...)` line for Troupe.
    static func dependency(_ given: String?) throws -> String {
        if let given, given.contains("://") || given.hasPrefix("git@") {
            return ".package(name: \"troupe\", url: \"\(given)\", from: \"\(TroupeRelease.version)\")"
        }
        let path = given ?? builtFrom
        guard let path, FileManager.default.fileExists(atPath: path + "/Package.swift"),
            (try? String(contentsOfFile: path + "/Package.swift", encoding: .utf8))?.contains("name: \"troupe\"") == true
        else {
            throw ValidationError(
                given == nil
                    ? "this troupe does not know where its source is; pass --troupe with a checkout's path or a git URL"
                    : "'\(given!)' is no Troupe checkout (no Package.swift naming the package 'troupe'); pass a checkout's path or a git URL"
            )
        }
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        return ".package(name: \"troupe\", path: \"\(absolute)\")"
    }

    /// The checkout this binary was built from, if it is still there.
    static var builtFrom: String? {
        let file = URL(fileURLWithPath: #filePath)
        let root = file.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return FileManager.default.fileExists(atPath: root.path + "/Package.swift") ? root.path : nil
    }

    /// `hello-agents` → `HelloAgents`: a Swift module name.
    static func moduleName(_ name: String) -> String {
        name.split(whereSeparator: { $0 == "-" || $0 == "_" }).map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
    }
}

/// The starter's files.
enum Starter {
    static func package(name: String, module: String, dependency: String) -> String {
        """
        // swift-tools-version: 6.2
        import PackageDescription

        let package = Package(
            name: "\(name)",
            platforms: [.macOS(.v15)],
            dependencies: [
                \(dependency),
            ],
            targets: [
                // Your agents and blueprints: they depend on the engine only.
                .target(
                    name: "\(module)Agents",
                    dependencies: [.product(name: "Troupe", package: "troupe")]
                ),
                // Your own `troupe`: every operator verb, with your blueprints.
                .executableTarget(
                    name: "\(name)",
                    dependencies: ["\(module)Agents", .product(name: "TroupeCLI", package: "troupe")]
                ),
                .testTarget(
                    name: "\(module)AgentsTests",
                    dependencies: [
                        "\(module)Agents",
                        .product(name: "Troupe", package: "troupe"),
                        .product(name: "TroupeTestKit", package: "troupe"),
                    ]
                ),
            ]
        )

        """
    }

    static let agent = """
        import Troupe

        /// Greets every `interval`, `count` times, and remembers how far it got: a durable agent. Kill its process
        /// (even with `kill -9`) and resume the run: it greets on from the last greeting it committed, and its sleep
        /// ends at the deadline it had.
        public struct Greeter: Agent {
            public struct State: AgentState {
                public var greetings = 0
                public init() {}
            }

            let count: Int
            let interval: Duration

            public init(count: Int, interval: Duration) {
                self.count = count
                self.interval = interval
            }

            public func run(state: inout State, context: AgentContext<Self>) async throws {
                while state.greetings < count {
                    try await context.sleep(for: interval)  // a durable timer
                    state.greetings += 1
                    context.logger.notice("hello #\\(state.greetings)")
                    try await context.checkpoint(state)  // committed: a resume continues from here
                }
            }

            /// The blueprint: one greeter, durable, that ends once it has greeted `count` times.
            public static func blueprint(count: Int, interval: Duration) -> Blueprint {
                Blueprint("hello", durability: .durable) {
                    Child("greeter", Greeter(count: count, interval: interval), restart: .transient)
                }
            }
        }

        """

    static func main(module: String) -> String {
        """
        import \(module)Agents
        import TroupeCLI

        /// What `run hello` starts, with its parameters (`run hello --param count=20`).
        let hello = BlueprintEntry(
            "hello",
            summary: "A durable greeter: kill it, resume it, and it greets on from where it was.",
            parameters: [
                .init("count", default: "10", help: "How many greetings.", kind: .integer(1...1_000_000)),
                .init("interval", default: "1s", help: "Time between greetings.", kind: .duration(.milliseconds(1)...(.seconds(3600)))),
            ],
            result: "greeter"
        ) { parameters in
            Greeter.blueprint(count: try parameters.int("count"), interval: try parameters.duration("interval"))
        }

        await TroupeCommand.main(blueprints: [hello])

        """
    }

    static func test(module: String) -> String {
        """
        import Foundation
        import Testing
        import Troupe
        import TroupeTestKit
        import \(module)Agents

        @Suite(.timeLimit(.minutes(1)))
        struct GreeterTests {
            /// The greeter greets `count` times, checkpointing each; a resume of the same run finds it done and
            /// greets no more.
            @Test func greetsAndResumesWhereItWas() async throws {
                let store = InMemoryCheckpointStore()
                let greeter = AgentID(run: "run-hello", name: "greeter")
                for attempt in 1...2 {
                    let run = try Run(Greeter.blueprint(count: 3, interval: .milliseconds(1)), id: "run-hello", configuration: .init(store: store))
                    let probe = AgentProbe(run)
                    // The probe's waits end at a deadline, throwing what they saw instead of hanging.
                    try await withRunning(run) { _ = try await probe.wait(for: "greeter", .exited, timeout: .seconds(30)) }
                    #expect(run.isResumed == (attempt == 2))
                    let saved = try #require(store.latest(of: greeter))
                    #expect(try JSONDecoder().decode(Greeter.State.self, from: Data(saved.state)).greetings == 3)
                }
            }

            /// Each greeting is a checkpoint, as the probe sees it.
            @Test func eachGreetingIsCheckpointed() async throws {
                let run = try Run(Greeter.blueprint(count: 2, interval: .milliseconds(1)), configuration: .init(checkpointEvents: true))
                let probe = AgentProbe(run)
                try await withRunning(run) {
                    let events = try await probe.wait(for: "greeter", .checkpointed, count: 2, timeout: .seconds(30))
                    #expect(events.count == 2)
                }
            }
        }

        """
    }
}
