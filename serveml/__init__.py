"""ServeML: serve scikit-learn, PyTorch, TensorFlow/Keras and ONNX models from AWS Lambda containers."""

from runtime import __version__

__all__ = ["__version__"]
