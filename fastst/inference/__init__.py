"""Inference: a trained model applied to images and videos.

`stylizer` runs the network (whole or tiled) with strength, colour and precision options; `tiling`
cuts big images into seam-free tiles that share instance-norm statistics; `backends` holds the
precision and backend policy and the registry through which other engines (ONNX Runtime, in
`export.runtime`) plug in; `planning` turns inputs, styles and an output into checked jobs;
`video` and `videoio` stylize videos frame by frame with their audio, `pipeline` runs the decoding
and encoding threads around it."""
