#!/bin/bash
# The checks of device 'cuda' in one run on a machine with an NVIDIA GPU, CuPy and PyTorch: install ffnn there,
# run tests/test_cuda.py (emulated and real GPU) and benchmarks/gpu.py. Logs and numbers go to $OUT.
#
#   bash benchmarks/gpu_check.sh                 # Fashion-MNIST's IDX files in $FASHION_DIR (else random data)
set -o pipefail
OUT=${OUT:-/tmp/ffnn-gpu-check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv 2>&1 | tee "$OUT/gpu.txt"
if ! python3 -m pip install -q --no-deps --no-build-isolation -e . >"$OUT/install.log" 2>&1; then
    echo "pip install failed (see install.log); using src/ without the compiled CPU kernels"
    export PYTHONPATH=$PWD/src
fi
python3 -c "import ffnn, cupy, torch; print('ffnn', ffnn.__file__, '| cupy', cupy.__version__, '| torch', torch.__version__)"
timeout 300 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$OUT/tests.log" | tail -40
timeout 360 python3 benchmarks/gpu.py --data-dir "${FASHION_DIR:-.fashion-mnist}" --json "$OUT/gpu.json" 2>&1 \
    | tee "$OUT/bench.log"
