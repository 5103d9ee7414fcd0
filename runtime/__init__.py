"""ServeML's Lambda runtime: the handler inside every model image."""

__version__ = "0.1.0"
