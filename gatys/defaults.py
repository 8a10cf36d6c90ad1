"""Default settings of the Gatys optimiser, kept free of torch so `gatys --help` starts at once."""
from __future__ import annotations

# Tuned for vgg16-caffe (Caffe-scale features, 0..255 inputs) with L-BFGS, 300 evaluations, 512 px:
# see the README for how they were chosen and how they scale with other backbones.
DEFAULT_CONTENT_WEIGHT = 1.0
DEFAULT_STYLE_WEIGHT = 5e3
DEFAULT_TV_WEIGHT = 1e5
DEFAULT_SIZE = 512
DEFAULT_ITERATIONS = 300
DEFAULT_BACKBONE = "vgg16-caffe"
SCORER_BACKBONE = "vgg16-caffe"
CSV_COLUMNS = ("iteration", "seconds", "content", "style", "tv", "total")
INITS = ("content", "noise", "style")
DEVICES = ("auto", "cpu", "cuda", "mps")
SGD_AUTO_STEP = 2e-3  # first SGD step, in mean absolute pixel change ([0, 1] scale), when --lr is not given
MIN_PYRAMID_SIDE = 32  # below this the deepest VGG layers see a 2x2 map: no useful style statistics
# Default learning rate per optimizer (pixels in [0, 1]); None: set from the first gradient (SGD_AUTO_STEP).
OPTIMIZER_LRS: dict[str, float | None] = {
    "sgd": None, "adadelta": 5.0, "adagrad": 0.05, "adam": 0.05, "rmsprop": 5e-3, "lbfgs": 1.0,
}
