public import InMemoryLogging
public import Logging

/// Loggers whose output tests can read (never bootstraps the logging system).
public enum TestLog {
    /// A logger that keeps what it is given in `handler`.
    public static func capturing(level: Logger.Level = .trace) -> (Logger, InMemoryLogHandler) {
        let handler = InMemoryLogHandler()
        var logger = Logger(label: "test", factory: { _ in handler })
        logger.logLevel = level
        return (logger, handler)
    }

    /// A logger whose output is kept but not looked at.
    public static func quiet() -> Logger { capturing(level: .info).0 }

    /// Everything one entry would print: level, message, metadata and error.
    public static func rendered(_ entry: InMemoryLogHandler.Entry) -> String {
        var text = "\(entry.level) \(entry.message)"
        for (key, value) in entry.metadata.sorted(by: { $0.key < $1.key }) {
            text += " \(key)=\(value)"
        }
        if let error = entry.error {
            text += " error=\(String(describing: error)) \(String(reflecting: error))"
        }
        return text
    }
}
