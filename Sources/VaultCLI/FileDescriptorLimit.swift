#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The process's limit on open files (`RLIMIT_NOFILE`), which the connection caps must fit under:
/// a cap above it lets connections exhaust the descriptors that database files and `/healthz`
/// need, the very failure the cap exists to prevent.
public enum FileDescriptorLimit {
    /// The current soft limit.
    public static var current: UInt64 {
        var limit = rlimit()
        _ = getrlimit(resource, &limit)
        return UInt64(limit.rlim_cur)
    }

    /// Raises the soft limit to `needed` where the hard limit allows (many systems start
    /// processes at a soft 1,024 under a far higher hard limit). Returns the soft limit after.
    @discardableResult
    public static func raise(to needed: UInt64) -> UInt64 {
        var limit = rlimit()
        guard getrlimit(resource, &limit) == 0 else { return current }
        guard UInt64(limit.rlim_cur) < needed else { return UInt64(limit.rlim_cur) }
        limit.rlim_cur = rlim_t(min(needed, UInt64(limit.rlim_max)))
        _ = setrlimit(resource, &limit)
        return current
    }

    /// Descriptors a server needs beyond its connections: databases and their WAL files, the
    /// audit head, listening sockets, the acquirer client, standard streams.
    static let reserve: UInt64 = 64

    #if canImport(Glibc)
        private static let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    #else
        private static let resource = RLIMIT_NOFILE
    #endif
}
