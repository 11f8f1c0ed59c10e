"""The training runtime: LightningCLI, run records, atomic checkpoint writing, process tuning."""
