"""Writes of the labeling app. Each module owns its transactions and says which locks it takes."""
