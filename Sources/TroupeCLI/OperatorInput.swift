import Foundation
import Troupe

/// Checks of what operators hand `troupe send` and `troupe signal`, shared with the console's API.
package enum OperatorInput {
    /// Refuses `text` unless it is JSON (``TroupeError/Code/invalidSpec``, exit 65), saying how to write it.
    ///
    /// - Parameters:
    ///   - what: What the text is, for the error ("the message").
    ///   - example: A correct use, for the error.
    package static func requireJSON(_ text: String, _ what: String, example: String) throws {
        do {
            _ = try JSONDecoder().decode(AnyJSON.self, from: Data(text.utf8))
        } catch {
            throw TroupeError(.invalidSpec, "\(what) is not JSON (\(error)). Quote it for the shell: \(example)")
        }
    }

    /// What is wrong with a signal's name, or `nil`: 1 to 100 letters, digits, '.', '_' or '-'.
    package static func signalNameProblem(_ name: String) -> String? {
        let allowed = !name.isEmpty && name.utf8.count <= 100 && name.unicodeScalars.allSatisfy { scalar in
            scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || ".-_".unicodeScalars.contains(scalar))
        }
        return allowed ? nil : "a signal's name takes 1 to 100 letters, digits, '.', '_' or '-', not '\(name)'"
    }
}

/// Any JSON value: what `troupe send` and `troupe signal` check before queuing.
private struct AnyJSON: Decodable {
    init(from decoder: any Decoder) throws {
        if var array = try? decoder.unkeyedContainer() {
            while !array.isAtEnd { _ = try array.decode(AnyJSON.self) }
        } else if let object = try? decoder.container(keyedBy: Key.self) {
            for key in object.allKeys { _ = try object.decode(AnyJSON.self, forKey: key) }
        } else {
            let value = try decoder.singleValueContainer()
            if value.decodeNil() { return }
            if (try? value.decode(Bool.self)) != nil || (try? value.decode(Double.self)) != nil { return }
            _ = try value.decode(String.self)
        }
    }

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}
