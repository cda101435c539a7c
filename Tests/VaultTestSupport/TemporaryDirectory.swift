import Foundation

/// Creates a new folder `<prefix>-<UUID>` in the system's temporary folder; returns its path.
public func makeTemporaryDirectory(_ prefix: String) throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Runs `body` with a new temporary folder (see ``makeTemporaryDirectory(_:)``), removed
/// afterwards with everything in it.
public func withTemporaryDirectory<R>(_ prefix: String, _ body: (String) async throws -> R) async throws -> R {
    let path = try makeTemporaryDirectory(prefix)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try await body(path)
}
