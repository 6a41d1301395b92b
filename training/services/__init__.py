"""Writes of the training app: one function per state change; each says which lock it takes."""
