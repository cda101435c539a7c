import VaultCLI

await VaultCommand.start()
