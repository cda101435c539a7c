import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Bytes of files and responses, for tests that look for what must not be there (a PAN, a key).
public enum Bytes {
    /// Whether `needle` occurs in `haystack` (fast enough for megabytes of files or logs).
    public static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard let first = needle.first else { return true }
        guard haystack.count >= needle.count else { return false }
        return haystack.withUnsafeBufferPointer { hay in
            needle.withUnsafeBufferPointer { needle in
                let last = hay.count - needle.count
                var start = 0
                while start <= last {
                    if hay[start] == first && memcmp(hay.baseAddress! + start, needle.baseAddress!, needle.count) == 0 {
                        return true
                    }
                    start += 1
                }
                return false
            }
        }
    }

    /// Whether `needle`'s UTF-8 bytes occur in `haystack`.
    public static func contains(_ haystack: [UInt8], _ needle: String) -> Bool {
        contains(haystack, Array(needle.utf8))
    }

    /// Every maximal run of bytes satisfying `isMember`, at least `minimumLength` long, with the
    /// `context` bytes before and after it: to look for strings in a large file quickly.
    public static func runs(
        in bytes: [UInt8], minimumLength: Int, context: Int = 0, where isMember: (UInt8) -> Bool
    ) -> [(before: [UInt8], run: String, after: [UInt8])] {
        var found = [(before: [UInt8], run: String, after: [UInt8])]()
        var start: Int?
        for index in 0...bytes.count {
            let member = index < bytes.count && isMember(bytes[index])
            if member, start == nil { start = index }
            if !member, let first = start {
                if index - first >= minimumLength {
                    found.append(
                        (
                            Array(bytes[max(0, first - context)..<first]),
                            String(decoding: bytes[first..<index], as: UTF8.self),
                            Array(bytes[index..<min(bytes.count, index + context)])
                        ))
                }
                start = nil
            }
        }
        return found
    }

    public static func isDigit(_ byte: UInt8) -> Bool { (48...57).contains(byte) }

    public static func isBase64URL(_ byte: UInt8) -> Bool {
        isDigit(byte) || (65...90).contains(byte) || (97...122).contains(byte) || byte == 45 || byte == 95
    }

    /// The contents of every regular file in `directory` (whose name starts with `prefix`), by name.
    public static func files(in directory: String, prefix: String = "") throws -> [String: [UInt8]] {
        var files = [String: [UInt8]]()
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) where name.hasPrefix(prefix) {
            let path = directory + "/" + name
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue
            else { continue }
            files[name] = try read(path)
        }
        return files
    }

    public static func read(_ path: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// Writes `bytes` to a new file with `mode`.
    public static func write(_ bytes: [UInt8], to path: String, mode: Int = 0o600) throws {
        let directory = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes), attributes: [.posixPermissions: mode])
        else { throw TestFailure("cannot create \(path)") }
        // The umask may have narrowed the mode: set it exactly.
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
    }

    /// The POSIX permission bits of `path`.
    public static func mode(of path: String) throws -> Int {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return (attributes[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    public static func random(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: 0...255) }
    }
}
