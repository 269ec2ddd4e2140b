#!/usr/bin/env bash
# The GPU benchmark, for a lent GPU machine without network (docs/PERFORMANCE.md, GPU section).
#
#   bash bench/gpu.sh prepare              # here: fill .gpu/ with what the GPU image lacks
#   bash bench/gpu.sh [PHASE ...]          # there (default: env warm video eval train vos)
#                                          # profile: jax.profiler trace of ours at 1024
#
# .gpu/ (git-ignored, carried with the working tree) holds site/, the pure-Python packages the
# GPU image lacks (the official sam2 as the reference, hydra-core, omegaconf, antlr4, iopath,
# ml_collections), and data/, the first 16 bedroom frames. Phases run in order of value, each
# under its own time limit, each writing $OUT/<phase>.json as rows finish, so a timeout keeps
# what was measured. Both sides compute in bf16 (ours dtype=bfloat16; the official under
# torch.autocast(bfloat16), as its tools/vos_inference.py). `warm` compiles the training step in
# the background (its compile takes minutes on a GPU) into JAX's persistent compilation cache,
# while the next phases run; `train` waits for it and then times the step from the cache. The
# warm compile's autotuning shares the GPU with the phases it overlaps (a little timing noise).
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == prepare ]]; then
  site=$(python -c "import sam2, pathlib; print(pathlib.Path(sam2.__file__).parent.parent)")
  rm -rf .gpu && mkdir -p .gpu/site .gpu/data/sam2_demo/bedroom
  for p in sam2 hydra omegaconf antlr4 iopath ml_collections; do cp -r "$site/$p" .gpu/site/; done
  find .gpu -name __pycache__ -prune -exec rm -rf {} +
  data=${SAM2_SHARED_DATA:-../shared/data}
  cp "$data"/sam2_demo/bedroom/000{00..15}.jpg .gpu/data/sam2_demo/bedroom/
  grep -qx "/.gpu/" .git/info/exclude 2>/dev/null || echo "/.gpu/" >>.git/info/exclude
  du -sh .gpu
  exit
fi

OUT=${OUT:-/tmp/sam2_gpu_bench}
mkdir -p "$OUT"
export PYTHONPATH="$PWD:$PWD/.gpu/site:${PYTHONPATH:-}" SAM2_SHARED_DATA="$PWD/.gpu/data"
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1
export XLA_PYTHON_CLIENT_MEM_FRACTION=0.5  # the official side shares the GPU
export JAX_COMPILATION_CACHE_DIR=/tmp/sam2_jax_cache
PEAK_BF16_TFLOPS=${PEAK_BF16_TFLOPS:-989}  # H100 SXM dense bf16 (datasheet), for MFU

run() {  # run NAME SECONDS COMMAND...: log to $OUT/NAME.log, print the table rows
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit}s) $(date +%T)"
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  grep -E "^\||^machine|^sam2|^bfloat16|^masks|Error" "$OUT/$name.log" | grep -v "^|---"
  ((rc == 0)) || { echo "-- $name exit $rc; last lines:"; tail -5 "$OUT/$name.log"; }
}

for phase in "${@:-env warm video eval train vos}"; do
  for p in $phase; do
    case $p in
      env)
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
        python3 -c "import jax, flax, torch, sam2_jax.build, sam2.build_sam; \
print('python', __import__('sys').version.split()[0], 'jax', jax.__version__, 'flax', \
flax.__version__, 'torch', torch.__version__, jax.devices())" 2>&1 | tail -3 ;;
      warm)
        echo "== warm: training step compile in the background $(date +%T)"
        XLA_PYTHON_CLIENT_PREALLOCATE=false timeout 400 python3 -m bench.train --cases tiny512 \
          --ours-only --dtype bfloat16 --compile-only --json "$OUT/train_compile.json" \
          >"$OUT/warm.log" 2>&1 &
        WARM_PID=$! ;;
      video)
        run video 190 python3 -m bench.video fps --sizes 1024 --objects 1 4 --dtype bfloat16 \
          --threads 16 --json "$OUT/video.json" ;;
      eval)
        run eval 170 python3 -m bench.eval --synthetic 8 --frames 24 --objects 3 --size 1024 \
          --videos-per-device 8 --dtype bfloat16 --threads 16 --json "$OUT/eval.json" ;;
      profile)
        XLA_FLAGS="--xla_dump_to=/tmp/sam2_dump --xla_dump_hlo_as_text --xla_dump_hlo_pass_re=NONE" \
          run profile 150 python3 -m bench.video fps --sizes 1024 --objects 1 --sides ours \
          --dtype bfloat16 --trace /tmp/sam2_trace --json "$OUT/profile.json"
        for depth in 2 4; do
          python3 -m bench.trace_summary /tmp/sam2_trace --hlo-dump /tmp/sam2_dump \
            --depth $depth --top 30 | tee "$OUT/profile_depth$depth.md" | head -22
        done
        tar czf "$OUT/trace.tgz" -C /tmp sam2_trace
        (cd /tmp/sam2_dump && tar czf "$OUT/hlo.tgz" ./*after_optimizations.txt) ;;
      vos)
        run vos 110 python3 -m bench.video fps --sizes 1024 --objects 1 --dtype bfloat16 \
          --sides official_vos --threads 16 --json "$OUT/vos.json" ;;
      train)
        [[ -n "${WARM_PID:-}" ]] && { wait "$WARM_PID"; grep -E "^\||Error" "$OUT/warm.log"; }
        run train 90 python3 -m bench.train --cases tiny512 --ours-only --dtype bfloat16 \
          --repeats 5 --peak-tflops "$PEAK_BF16_TFLOPS" --json "$OUT/train.json" ;;
      *) echo "unknown phase $p (env warm video train eval profile vos)" && exit 2 ;;
    esac
  done
done
