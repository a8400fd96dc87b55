#!/usr/bin/env bash
# Stage what the GPU studies carry to the lent GPU machine, under .gpu/ (git-ignored), in one go:
#   .gpu/p1 … .gpu/pN, .gpu/rest   onnxruntime-gpu in parts, PyAV, py-spy (../shared/tools/gpu-wheels.sh)
#   .gpu/media                     the bottle footage and YOLOX-Nano (scripts/gpu.py --media)
#   .gpu/shared                    the model and person footage scripts/streams_load.py reads
#                                  (ANNOTATE_TEST_SHARED there)
#   .gpu/old                       with OLD_COMMIT: the package then, for scripts/gpu.py --old
#
#     scripts/gpu_stage.sh [OLD_COMMIT]        (from the project's root)
#
# It prints the calls to make, back to back: the machine is given back ~30 s after a call, and
# with it the parts stashed so far (CONTRIBUTING.md, "Measuring on the lent GPU").
set -euo pipefail
root=$(git rev-parse --show-toplevel); cd "$root"
shared=${ANNOTATE_TEST_SHARED:-../shared}
old=${1:-}
[ -f "$shared/models/yolox_nano.onnx" ] || { echo "no $shared/models: set ANNOTATE_TEST_SHARED" >&2; exit 2; }
# First: it empties .gpu/rest, which py-spy joins below; it prints the calls' carry.
bash "$shared/tools/gpu-wheels.sh"
rm -rf .gpu/media .gpu/shared .gpu/old
mkdir -p .gpu/media .gpu/shared/models .gpu/shared/data/videos
cp "$shared/data/videos/bottle-detection.mp4" "$shared/models/yolox_nano.onnx" .gpu/media/
cp "$shared/models/yolox_nano.onnx" .gpu/shared/models/
cp "$shared/data/videos/one-by-one-person-detection.mp4" .gpu/shared/data/videos/
if [ -n "$old" ]; then mkdir .gpu/old && git archive "$old" annotate | tar -x -C .gpu/old; fi
python3 -m pip download -q --no-deps --python-version 3.12 --implementation cp --only-binary=:all: \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu/rest py-spy
echo "staged .gpu/media, .gpu/shared$([ -z "$old" ] || echo ", .gpu/old ($old)"), py-spy in .gpu/rest"
echo "the last call also carries what the study reads, and runs: bash .gpu/pN/stash.sh;" \
  "bash .gpu/rest/stash.sh; . .gpu/rest/env.sh; python3 -m scripts.…"
