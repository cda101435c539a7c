#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Keeps the memory of a process that holds keys and card data out of core files and away from
/// debuggers of the same user (finding 14): a crash or `gcore` must not write keys, PANs or CVVs
/// to disk, and `ptrace` must not read them.
public enum ProcessHardening {
    /// Why hardening failed: which call, and its `errno`.
    public struct Failure: Error, CustomStringConvertible {
        public let call: String
        public let errno: Int32
        public var description: String { "\(call) failed (errno \(errno))" }
    }

    /// Sets `RLIMIT_CORE` to 0 (soft and hard, so the process cannot raise it again) and, on
    /// Linux, `PR_SET_DUMPABLE` to 0 (no core dump, no ptrace attach by the same user, `/proc/<pid>`
    /// files owned by root). Call it first in `serve` and `acquirer-sim`, before any secret is loaded.
    public static func apply() throws(Failure) {
        var none = rlimit(rlim_cur: 0, rlim_max: 0)
        #if canImport(Glibc)
            let resource = __rlimit_resource_t(RLIMIT_CORE.rawValue)
        #else
            let resource = RLIMIT_CORE
        #endif
        guard setrlimit(resource, &none) == 0 else { throw Failure(call: "setrlimit(RLIMIT_CORE)", errno: errno) }
        #if os(Linux)
            guard let prctl = linuxPrctl, prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0 else {
                throw Failure(call: "prctl(PR_SET_DUMPABLE)", errno: errno)
            }
        #endif
    }

    /// The current soft and hard `RLIMIT_CORE`.
    public static var coreLimit: (soft: UInt64, hard: UInt64) {
        var limit = rlimit()
        #if canImport(Glibc)
            _ = getrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), &limit)
        #else
            _ = getrlimit(RLIMIT_CORE, &limit)
        #endif
        return (UInt64(limit.rlim_cur), UInt64(limit.rlim_max))
    }

    /// Whether the process may be dumped or traced (`PR_GET_DUMPABLE`); always `nil` off Linux.
    public static var isDumpable: Bool? {
        #if os(Linux)
            return linuxPrctl.map { $0(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0 }
        #else
            return nil
        #endif
    }

    #if os(Linux)
        // Swift cannot call C's variadic prctl(2); every option used here takes four integer
        // arguments, so the symbol is called through a fixed signature.
        private typealias Prctl = @convention(c) (Int32, UInt, UInt, UInt, UInt) -> Int32
        private static var linuxPrctl: Prctl? {
            dlsym(dlopen(nil, RTLD_NOW), "prctl").map { unsafeBitCast($0, to: Prctl.self) }
        }
        private static let PR_GET_DUMPABLE: Int32 = 3
        private static let PR_SET_DUMPABLE: Int32 = 4
    #endif
}
