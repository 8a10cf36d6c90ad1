#!/usr/bin/env bash
# Print the path of a ready virtual environment for this checkout, creating it if needed.
# One venv is cached per hash of the dependency spec (pyproject.toml), so CI runs and
# `make` reuse it instead of installing ~6 GB of torch each time.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python3}
# the hash covers the dependency lists only (from "dependencies" up to the scripts table)
spec_hash=$( (sed -n '/^dependencies = \[/,/^\[project.scripts\]/p' "$root/pyproject.toml"; "$py" --version; uname -m) \
    | sha256sum | cut -c1-16)
cache=${FASTST_VENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fastst/venvs}
venv="$cache/$spec_hash"
if [ ! -f "$venv/.complete" ]; then
    echo "fastst: building the virtual environment $venv (once per dependency spec)" >&2
    rm -rf "$venv.tmp"
    mkdir -p "$cache"
    "$py" -m venv "$venv.tmp"
    "$venv.tmp/bin/pip" install --quiet --upgrade pip "setuptools>=77" wheel >&2
    # torch/torchvision first: on x86-64 Linux this pair comes from the local wheel store when present.
    if [ "$(uname -m)" = "x86_64" ] && [ "$(uname -s)" = "Linux" ]; then
        "$venv.tmp/bin/pip" install --quiet "torch==2.14.1" "torchvision==0.29.1" >&2 \
            || "$venv.tmp/bin/pip" install --quiet torch torchvision >&2
    fi
    "$venv.tmp/bin/pip" install --quiet -e "$root[test,video]" >&2
    rm -rf "$venv"
    mv "$venv.tmp" "$venv"
    # scripts written inside the .tmp folder name it in their shebangs, the activate scripts in
    # VIRTUAL_ENV and the prompt: rewrite them for the final path
    sed -i "1s|$venv.tmp/|$venv/|" "$venv"/bin/* 2>/dev/null || true
    sed -i "s|$venv.tmp|$venv|g; s|($(basename "$venv").tmp)|($(basename "$venv"))|g" "$venv"/bin/activate* 2>/dev/null || true
    touch "$venv/.complete"
fi
# Always point the cached venv's editable install at this checkout (CI clones into new folders).
log=$(mktemp)
if ! "$venv/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e "$root" >"$log" 2>&1; then
    cat "$log" >&2; rm -f "$log"; exit 1
fi
rm -f "$log"
echo "$venv"
