"""Export trained fastst models to ONNX and Core ML, and run ONNX exports with ONNX Runtime (`runtime`)."""
