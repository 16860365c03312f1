import Foundation
import Testing
@testable import Troupe

/// The engine's state encoder writes what `JSONEncoder` writes (the same JSON values; keys in encoding order), and
/// hands what it does not write itself to `JSONEncoder`, errors included.
@Suite struct CompactJSONTests {
    /// The JSON value of `bytes`, printed with sorted keys: two encodings are the same JSON when these are equal.
    func canonical(_ bytes: [UInt8]) throws -> String {
        let object = try JSONSerialization.jsonObject(with: Data(bytes), options: .fragmentsAllowed)
        return String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .fragmentsAllowed]), as: UTF8.self)
    }

    /// Checks that `value` encodes to the JSON `JSONEncoder` gives and decodes back to itself.
    func checkSame<T: Codable & Equatable>(_ value: T, sourceLocation: SourceLocation = #_sourceLocation) throws {
        // Written by the stream itself, not handed to JSONEncoder.
        let compact = try #require(try CompactJSON.streamed(value), sourceLocation: sourceLocation)
        let reference = Array(try JSONEncoder().encode(value))
        #expect(try canonical(compact) == canonical(reference), sourceLocation: sourceLocation)
        #expect(try JSONDecoder().decode(T.self, from: Data(compact)) == value, sourceLocation: sourceLocation)
    }

    struct Primitives: Codable, Equatable {
        var int = Int.min
        var int8 = Int8.min
        var int16 = Int16.max
        var int32 = Int32.min
        var int64 = Int64.max
        var uint = UInt.max
        var uint8 = UInt8.max
        var uint16: UInt16 = 0
        var uint32 = UInt32.max
        var uint64 = UInt64.max
        var double = 0.1
        var whole = 1.0
        var negativeZero = -0.0
        var large = 1e20
        var small = 1e-7
        var huge = Double.greatestFiniteMagnitude
        var tiny = Double.leastNonzeroMagnitude
        var float: Float = 0.1
        var floatWhole: Float = 3
        var yes = true
        var no = false
        var none: Int? = nil
        var some: String? = "here"
        var date = Date(timeIntervalSinceReferenceDate: 12.5)
    }

    @Test func primitivesMatchJSONEncoder() throws {
        try checkSame(Primitives())
    }

    @Test func numbersAreWrittenAsJSONEncoderWritesThem() throws {
        // Not only the same values: the same text, so what `troupe checkpoints --show` prints does not change.
        let doubles: [Double] = [1, 0.1, -0.0, 1e20, 1e-7, 1e16, .pi, 5e-324, 123456789012345680000]
        #expect(try CompactJSON.encode(doubles) == Array(try JSONEncoder().encode(doubles)))
        let floats: [Float] = [.pi, 100, 1e16, 16777216, 1e-45, 0.1]
        #expect(try CompactJSON.encode(floats) == Array(try JSONEncoder().encode(floats)))
        let integers: [Int64] = [0, 1, -1, 10, -10, .max, .min, 1_000_000]
        #expect(try CompactJSON.encode(integers) == Array(try JSONEncoder().encode(integers)))
    }

    @Test func stringsAreEscapedAsJSONEncoderEscapesThem() throws {
        let strings = ["plain", "quote \" and \\ backslash", "a/b", "\u{0}\u{1}\u{8}\u{9}\u{A}\u{C}\u{D}\u{1F}", "é 😀 日本", ""]
        #expect(try CompactJSON.encode(strings) == Array(try JSONEncoder().encode(strings)))
        try checkSame(["key \"quoted\"/\n": "value"])
        // Each special character at each place of strings long enough to be scanned eight bytes at a time.
        var long: [String] = []
        for special in ["\"", "\\", "/", "\u{0}", "\u{1F}", "\n", "é", "😀"] {
            for length in [7, 8, 9, 16, 17, 33] {
                for place in 0..<length {
                    var characters = Array(repeating: Character("a"), count: length)
                    characters[place] = Character(special)
                    long.append(String(characters))
                }
            }
        }
        long.append(String(repeating: "\u{7F}~ ", count: 20))
        #expect(try CompactJSON.encode(long) == Array(try JSONEncoder().encode(long)))
    }

    indirect enum Shape: Codable, Equatable {
        case circle(radius: Double)
        case group([Shape], name: String)
        case empty
    }

    struct Nested: Codable, Equatable {
        var shapes: [Shape] = [.circle(radius: 2), .group([.empty, .circle(radius: 0.5)], name: "g"), .empty]
        var matrix: [[Int]] = [[1, 2], [], [3]]
        var byName: [String: [Int]] = ["a": [1], "b": []]
        var byNumber: [Int: String] = [3: "three", 1: "one"]
        var optionals: [Int?] = [1, nil, 3]
        var inner: Primitives? = Primitives()
        var set: Set<String> = ["x"]
    }

    @Test func nestedValuesMatchJSONEncoder() throws {
        try checkSame(Nested())
        try checkSame([Nested(), Nested(shapes: [], matrix: [], byName: [:], byNumber: [:], optionals: [], inner: nil, set: [])])
        try checkSame("top-level string")
        try checkSame(42)
        try checkSame([String: Int]())
    }

    @Test func keysStayInTheOrderTheyWereEncoded() throws {
        struct Ordered: Codable, Equatable {
            var zebra = 1
            var apple = 2
            var mango = 3
        }
        #expect(String(decoding: try CompactJSON.encode(Ordered()), as: UTF8.self) == #"{"zebra":1,"apple":2,"mango":3}"#)
    }

    @Test func largeObjectsMatchJSONEncoder() throws {
        let large = Dictionary(uniqueKeysWithValues: (0..<500).map { ("key\($0)", $0) })
        try checkSame(large)
    }

    /// Writes a nested container, then goes back to its parent: the usual shape of hand-written `encode(to:)`.
    struct Hand: Codable, Equatable {
        var a = 1
        var b = [2, 3]
        var c = "c"

        enum Keys: String, CodingKey { case a, inner, c }
        enum InnerKeys: String, CodingKey { case b, list }

        init() {}

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: Keys.self)
            a = try container.decode(Int.self, forKey: .a)
            let inner = try container.nestedContainer(keyedBy: InnerKeys.self, forKey: .inner)
            var list = try inner.nestedUnkeyedContainer(forKey: .list)
            b = []
            while !list.isAtEnd { b.append(try list.decode(Int.self)) }
            c = try container.decode(String.self, forKey: .c)
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode(a, forKey: .a)
            var inner = container.nestedContainer(keyedBy: InnerKeys.self, forKey: .inner)
            var list = inner.nestedUnkeyedContainer(forKey: .list)
            for value in b { try list.encode(value) }
            try container.encode(c, forKey: .c)
        }
    }

    @Test func nestedContainersCloseWhenTheirParentGoesOn() throws {
        try checkSame(Hand())
        #expect(String(decoding: try CompactJSON.encode(Hand()), as: UTF8.self) == #"{"a":1,"inner":{"list":[2,3]},"c":"c"}"#)
    }

    struct Blob: Codable, Equatable {
        var data = Data([0, 1, 2, 250])
        var url = URL(string: "https://example.com/a?b=c")!
        var decimal = Decimal(string: "3.14159")!
        var count = 3
    }

    @Test func dataURLAndDecimalAreJSONEncoders() throws {
        #expect(try CompactJSON.streamed(Blob()) == nil)
        #expect(try canonical(CompactJSON.encode(Blob())) == canonical(Array(JSONEncoder().encode(Blob()))))
        #expect(try JSONDecoder().decode(Blob.self, from: Data(CompactJSON.encode(Blob()))) == Blob())
        // Data is base64, as JSONEncoder writes it, not an array of numbers.
        #expect(String(decoding: try CompactJSON.encode(Blob()), as: UTF8.self).contains(#""AAEC+g==""#))
    }

    @Test func nonFiniteNumbersFailAsJSONEncoderFails() throws {
        #expect(throws: EncodingError.self) { try CompactJSON.encode([1.0, .nan]) }
        #expect(throws: EncodingError.self) { try CompactJSON.encode(["x": Float.infinity]) }
    }

    /// Encodes the same key twice: JSONEncoder keeps the last value.
    struct Twice: Encodable {
        enum Keys: String, CodingKey { case value, other }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode(1, forKey: .value)
            try container.encode(0, forKey: .other)
            try container.encode(2, forKey: .value)
        }
    }

    /// Writes to two containers by turns: a stream cannot, so JSONEncoder does it.
    struct Interleaved: Encodable {
        enum Keys: String, CodingKey { case first, second, after }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            var first = container.nestedUnkeyedContainer(forKey: .first)
            var second = container.nestedUnkeyedContainer(forKey: .second)
            try first.encode(1)
            try second.encode(2)
            try first.encode(3)
            try container.encode(true, forKey: .after)
        }
    }

    class Base: Encodable {
        var base = 1
        enum Keys: String, CodingKey { case base }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode(base, forKey: .base)
        }
    }

    final class Derived: Base, @unchecked Sendable {
        var derived = 2
        enum DerivedKeys: String, CodingKey { case derived, `super` }
        override func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: DerivedKeys.self)
            try container.encode(derived, forKey: .derived)
            try super.encode(to: container.superEncoder())
        }
    }

    /// Encodes through the same keyed container twice, as a subclass and its superclass sharing one object do.
    final class Shared: Base, @unchecked Sendable {
        var shared = 3
        enum SharedKeys: String, CodingKey { case shared }
        override func encode(to encoder: any Encoder) throws {
            try super.encode(to: encoder)
            var container = encoder.container(keyedBy: SharedKeys.self)
            try container.encode(shared, forKey: .shared)
        }
    }

    struct Silent: Encodable {
        func encode(to encoder: any Encoder) throws {}
    }

    @Test func whatAStreamCannotWriteGoesToJSONEncoder() throws {
        for value in [Twice() as any Encodable, Interleaved(), Derived(), [Silent()]] {
            #expect(try CompactJSON.streamed(value) == nil, "\(type(of: value)) was streamed")
            let compact = try CompactJSON.encode(value)
            let reference = Array(try JSONEncoder().encode(value))
            #expect(try canonical(compact) == canonical(reference), "\(type(of: value))")
        }
        #expect(try canonical(CompactJSON.encode(Twice())) == #"{"other":0,"value":2}"#)
        // A keyed container asked for twice is continued, not handed over.
        #expect(try CompactJSON.streamed(Shared()).map { String(decoding: $0, as: UTF8.self) } == #"{"base":1,"shared":3}"#)
        // A value that encodes nothing at the top fails as it does with JSONEncoder.
        #expect(throws: EncodingError.self) { try CompactJSON.encode(Silent()) }
    }

    @Test func codingPathIsKeptForHandWrittenCode() throws {
        struct PathRecorder: Encodable {
            func encode(to encoder: any Encoder) throws {
                var container = encoder.singleValueContainer()
                try container.encode(encoder.codingPath.map(\.stringValue).joined(separator: "."))
            }
        }
        struct Outer: Encodable {
            var inner = ["list": [PathRecorder()]]
        }
        let compact = String(decoding: try CompactJSON.encode(Outer()), as: UTF8.self)
        let reference = String(decoding: try JSONEncoder().encode(Outer()), as: UTF8.self)
        #expect(compact == reference)
        #expect(compact.contains("inner.list.Index 0"))
    }
}
