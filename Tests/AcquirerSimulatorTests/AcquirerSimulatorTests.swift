import Testing

@Suite("Acquirer simulator") struct AcquirerSimulatorPlaceholderTests {}
