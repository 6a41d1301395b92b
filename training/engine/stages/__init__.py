"""One module per stage; each exposes ``run(spec, events, cancel) -> final metrics``."""
