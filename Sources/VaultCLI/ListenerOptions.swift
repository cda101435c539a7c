import ArgumentParser
import Foundation
import HTTPListener

/// `--idle-timeout`, `--request-timeout` and `--max-connections`, shared by `serve` (for each
/// of its listeners) and `acquirer-sim`; the defaults live in ``ListenerLimits``.
struct ListenerOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Seconds a connection may send nothing (before, between or inside requests) before it is closed.",
            discussion:
                "A request's headers must arrive within it; a client leaving a response unread as long is closed too."))
    var idleTimeout: Int = ListenerLimits.defaultIdleTimeoutSeconds

    @Option(help: "Seconds a request's body may take to arrive after its headers; then 408 and the connection closes.")
    var requestTimeout: Int = ListenerLimits.defaultRequestTimeoutSeconds

    @Option(
        help: ArgumentHelp(
            "Open connections per listener; a connection over this gets 503 too_many_connections and is closed.",
            discussion: "Keep it well under the file-descriptor limit (ulimit -n)."))
    var maxConnections: Int = ListenerLimits.defaultMaxConnections

    func validate() throws {
        guard (1...3600).contains(idleTimeout) else { throw ValidationError("--idle-timeout must be 1 to 3600") }
        guard (1...3600).contains(requestTimeout) else {
            throw ValidationError("--request-timeout must be 1 to 3600")
        }
        guard (1...1_000_000).contains(maxConnections) else {
            throw ValidationError("--max-connections must be 1 to 1000000")
        }
    }

    var limits: ListenerLimits {
        ListenerLimits(
            idleTimeout: .seconds(idleTimeout), requestTimeout: .seconds(requestTimeout),
            maxConnections: maxConnections)
    }

    /// Makes room for `listeners` listeners at the cap (raising the soft `ulimit -n` where the
    /// hard limit allows); warns on standard error when even that is too low.
    func ensureFileDescriptors(listeners: Int, command: String) {
        let needed = UInt64(listeners * maxConnections) + FileDescriptorLimit.reserve
        let limit = FileDescriptorLimit.raise(to: needed)
        if limit < needed {
            FileHandle.standardError.write(
                Data(
                    ("\(command): warning: --max-connections \(maxConnections) needs about \(needed) open files, "
                        + "but the limit is \(limit) (ulimit -n); lower --max-connections or raise the limit\n").utf8))
        }
    }
}
