#!/bin/bash
# The checks of device 'cuda' in one run on a machine with an NVIDIA GPU, CuPy and PyTorch: install ffnn there,
# run tests/test_cuda.py (emulated and real GPU), benchmarks/gpu.py, and `ffnn train` on both devices.
# Logs and numbers go to $OUT; each step has its own time limit, so a step that hangs leaves time to the others.
#
#   bash benchmarks/gpu_check.sh                 # Fashion-MNIST's IDX files in $FASHION_DIR (else random data)
set -o pipefail
OUT=${OUT:-/tmp/ffnn-gpu-check}
DATA=${FASHION_DIR:-.fashion-mnist}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv 2>&1 | tee "$OUT/gpu.txt"
if ! python3 -m pip install -q --no-deps --no-build-isolation -e . >"$OUT/install.log" 2>&1; then
    echo "pip install failed (see install.log); using src/ without the compiled CPU kernels"
    export PYTHONPATH=$PWD/src
fi
python3 -c "import ffnn, cupy, torch; print('ffnn', ffnn.__file__, '| cupy', cupy.__version__, '| torch', torch.__version__)"
echo "== tests"
timeout 150 python3 -m pytest -q -p no:cacheprovider -rfE tests/test_cuda.py 2>&1 | tee "$OUT/tests.log" | tail -60
echo "== benchmark"
timeout 240 python3 benchmarks/gpu.py --data-dir "$DATA" --json "$OUT/gpu.json" 2>&1 | tee "$OUT/bench.log"
echo "== ffnn train, the same run on each device"
TIMEFORMAT="%R s wall"
for device in cuda cpu; do
    time timeout 90 python3 -m ffnn train -d fashion_mnist --data-dir "$DATA" \
        -e 5 -b 64 -o adam -a tanh --seed 1 --device "$device" --output-dir /tmp/ffnn-runs --name "$device" 2>&1 \
        | tee -a "$OUT/train.log" | tail -12
done
