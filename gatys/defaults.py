"""Default settings of the Gatys optimiser, kept free of torch so `gatys --help` starts at once. The
objective's own defaults (layers, α, β, TV weights) are the core's, in `fastst.objectives.settings`."""
from __future__ import annotations

from fastst.objectives.settings import (  # noqa: F401 - gatys' defaults
                                        DEFAULT_CONTENT_WEIGHT,
                                        DEFAULT_STYLE_WEIGHT,
                                        DEFAULT_TV_WEIGHT,
                                        NORMALIZED_CONTENT_WEIGHT,
                                        NORMALIZED_STYLE_WEIGHT,
                                        NORMALIZED_TV_WEIGHT,
                                        default_weights,
)
from fastst.training.config import MAX_IMAGE_SIZE, MAX_SEED  # noqa: F401 - gatys' bounds

# L-BFGS's fixed step with normalised gradients: 1 (neural-style's) diverged on one of four sample photos at
# 256 px; 0.5 and 0.3 converged on all four and at 512 px.
NORMALIZED_LBFGS_LR = 0.3
LBFGS_HISTORY = 50  # L-BFGS's remembered steps, two image-sized vectors each (neural-style: -lbfgs_num_correction)
DEFAULT_SIZE = 512
DEFAULT_ITERATIONS = 300
DEFAULT_BACKBONE = "vgg16-caffe"
SCORER_BACKBONE = "vgg16-caffe"
CSV_COLUMNS = ("iteration", "seconds", "content", "style", "tv", "total")
INITS = ("content", "noise", "style")
SGD_AUTO_STEP = 2e-3  # first SGD step, in mean absolute pixel change ([0, 1] scale), when no learning rate is given
MIN_PYRAMID_SIDE = 32  # below this the deepest VGG layers see a 2x2 map: no useful style statistics
MAX_SIZE = MAX_IMAGE_SIZE  # the largest long side of the output and of the style images (fastst train's too)
# Default learning rate per optimizer (pixels in [0, 1]); None: set from the first gradient (SGD_AUTO_STEP).
OPTIMIZER_LRS: dict[str, float | None] = {
    "sgd": None, "adadelta": 5.0, "adagrad": 0.05, "adam": 0.05, "rmsprop": 5e-3, "lbfgs": 1.0,
}
