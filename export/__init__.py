"""Export trained fastst models to ONNX and Core ML."""
