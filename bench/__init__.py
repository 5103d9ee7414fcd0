"""ServeML's Lambda handler against what users would otherwise deploy: ``python -m bench``."""
