package import FoundationEssentials

// Helpers the package's stores share (not public API): what two backends would otherwise each write.

/// One SQL file of a store's schema history, embedded in the binary.
package struct Migration: Sendable {
    /// Its number: migrations apply in this order.
    package let id: Int
    /// Its file name, `NNNN_what.sql`.
    package let name: String
    package let sql: String

    package init(id: Int, name: String, sql: String) {
        self.id = id
        self.name = name
        self.sql = sql
    }

    /// What the database records, to notice a file edited after it was applied.
    package var checksum: String { MigrationChecksum.of(sql) }
}

/// Checksums of migration files: FNV-1a, 64 bits, as 16 hex digits — enough to notice an edited file, and no
/// dependency.
package enum MigrationChecksum {
    package static func of(_ text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

extension ClaimRequest {
    /// The most claims a store makes in one writer job (the supervisor claims ahead in batches of this size).
    package static let batchSize = 4096

    /// Claims `requests` in jobs of up to ``batchSize`` through `claim`, and returns the claims in order.
    package static func inBatches(
        _ requests: [ClaimRequest],
        _ claim: ([ClaimRequest]) async throws -> [Claim]
    ) async throws -> [Claim] {
        var claims: [Claim] = []
        claims.reserveCapacity(requests.count)
        var start = requests.startIndex
        while start < requests.endIndex {
            let chunk = Array(requests[start..<min(start + batchSize, requests.endIndex)])
            claims += try await claim(chunk)
            start += chunk.count
        }
        return claims
    }
}

extension TreeSnapshot {
    /// A published tree as stores keep it: JSON with sorted keys.
    package static func json(_ nodes: [TreeNode]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: try encoder.encode(nodes), as: UTF8.self)
    }

    /// Reads a tree a store kept; the error says which run and where, and that nothing else depends on it.
    package init(json: String, at: Date, run: RunID, location: String) throws {
        do {
            self.init(nodes: try JSONDecoder().decode([TreeNode].self, from: Data(json.utf8)), at: at)
        } catch {
            throw TroupeError(
                .notADatabase,
                "the tree snapshot of run \(run) in \(location) cannot be read (\(error)). It is rewritten while the run "
                    + "is driven; `troupe status` and `troupe events` do not need it."
            )
        }
    }
}

/// How the package's stores bound the agents' log lines (`log` events) they keep per run.
package enum LogRetention {
    /// Lines kept per run, at least: the newest.
    package static let lines = 10_000
    /// Older lines are deleted each time a run has logged this many more (so a run keeps up to `lines + every - 1`).
    package static let every = 500
}
