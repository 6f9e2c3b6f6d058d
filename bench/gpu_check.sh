#!/usr/bin/env bash
# One prepared GPU check of speechbrain-sense, for any CUDA machine, offline.
#
#   bench/gpu_check.sh [--wheels DIR] [--ablations] [--smoke] OUT_DIR
#
# Runs, one after the other, with the raw logs in OUT_DIR/logs and one
# Markdown report, OUT_DIR/report.md (each figure with its exact command):
#   train_audio    both training pipelines (ours and upstream-style) at full
#                  size, in steady state: 60 timed steps after a warm-up,
#                  from workers already running; MFU and data wait
#   train_shards   ours reading precomputed feature shards
#   embed          encoder real-time factor; exact search 10^5 and 10^6
#                  queries x keys at 1024-d, scored in fp32 and in fp16
#   teacher        teacher cache build (transcripts/s) against recomputing
# and with --ablations (about 4 more minutes), one change at a time:
#   ablate_*       ours without fused Adam, with activation checkpointing,
#                  with torch.compile
#   memory         the largest max_batch_seconds that fits the GPU, with and
#                  without activation checkpointing
#
# The core steps are sized for under 8 minutes on one H100/H200, corpus
# generation included (estimated from the stage times of the last H200 run
# in docs/benchmarks.md; the script itself has not yet run on a GPU). Any
# failing step stops the script with its name, exit status and the end of
# its log, and the script exits non-zero.
#
# --wheels DIR   install the Python packages this machine lacks (e.g.
#                speechbrain, hyperpyyaml, soundfile, espeakng-loader on a
#                bare CUDA image) from the wheels in DIR, without internet,
#                into OUT_DIR/site (../shared/GPU.md says which ones).
# --ablations    also run the one-at-a-time ablations and the memory search.
# --smoke        tiny models on the CPU, a few steps each: checks that the
#                script and every benchmark run (the test suite does this).
# PYTHON         the interpreter (default: python3).
set -euo pipefail

usage() {
    sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

ARGUMENTS="$*"
WHEELS=""
ABLATIONS=0
SMOKE=0
OUT=""
while (($#)); do
    case "$1" in
        --wheels) WHEELS="${2:?--wheels needs a folder}"; shift 2 ;;
        --ablations) ABLATIONS=1; shift ;;
        --smoke) SMOKE=1; shift ;;
        -h | --help) usage ;;
        -*) echo "gpu_check: unknown option $1" >&2; usage ;;
        *) [[ -z "$OUT" ]] || usage; OUT="$1"; shift ;;
    esac
done
[[ -n "$OUT" ]] || usage

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
mkdir -p "$OUT/logs"
OUT="$(cd "$OUT" && pwd)"
REPORT="$OUT/report.md"
WORK="$OUT/work"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

fail() {
    echo "gpu_check: $*" >&2
    echo "gpu_check: FAILED (report so far: $REPORT)" >&2
    exit 1
}

# ------------------------------------------------------------------ setup
command -v "$PYTHON" >/dev/null || fail "no Python interpreter '$PYTHON'"
if [[ "$PYTHON" == */* ]]; then
    # Absolute, for the steps run in bench/ (not resolved: a virtual
    # environment's python is a symlink that must stay one).
    PYTHON="$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")"
fi
REQUIRED=(torch torchaudio transformers numpy speechbrain hyperpyyaml
    ruamel.yaml soundfile espeakng_loader)
missing() {
    "$PYTHON" - "${REQUIRED[@]}" <<'EOF'
import importlib.util, sys
def absent(name):
    try:
        return importlib.util.find_spec(name) is None
    except ModuleNotFoundError:  # its parent package is absent
        return True
print(" ".join(m for m in sys.argv[1:] if absent(m)))
EOF
}
MISSING="$(missing)"
if [[ -n "$MISSING" && -n "$WHEELS" ]]; then
    [[ -d "$WHEELS" ]] || fail "--wheels $WHEELS is not a folder"
    echo "gpu_check: installing from $WHEELS for: $MISSING"
    "$PYTHON" -m pip install --quiet --no-index --no-deps \
        --target "$OUT/site" "$WHEELS"/*.whl \
        >"$OUT/logs/wheels.log" 2>&1 ||
        fail "installing the wheels of $WHEELS failed (logs/wheels.log)"
    export PYTHONPATH="$PYTHONPATH:$OUT/site"
    MISSING="$(missing)"
fi
[[ -z "$MISSING" ]] || fail "missing Python packages: $MISSING (give \
--wheels DIR with their wheels; see ../shared/GPU.md)"

if ((SMOKE)); then
    DEVICE=cpu
else
    DEVICE=cuda
    "$PYTHON" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' ||
        fail "torch sees no CUDA device (use --smoke for a CPU dry run)"
fi
CORES="$(nproc)"
WORKERS=$((CORES > 14 ? 12 : (CORES > 2 ? CORES - 2 : 1)))

{
    echo "# speechbrain-sense GPU check"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null ||
        echo 'not a git checkout')"
    echo "- command: \`bench/gpu_check.sh $ARGUMENTS\`"
    echo "- $("$PYTHON" - <<'EOF'
import os, torch, transformers
name = (torch.cuda.get_device_name(0) if torch.cuda.is_available()
        else "CPU only")
print(f"device: {name}; {os.cpu_count()} CPU cores; torch {torch.__version__}"
      f", CUDA {torch.version.cuda}; transformers {transformers.__version__}")
EOF
)"
    echo "- DataLoader workers: $WORKERS"
    echo
} >"$REPORT"

# ------------------------------------------------------------------ steps
# step NAME TITLE LIMIT_SECONDS COMMAND...: runs COMMAND in bench/, logs it,
# appends its tables and result lines to the report; stops on failure.
step() {
    local name="$1" title="$2" limit="$3"
    shift 3
    local log="$OUT/logs/$name.log" start status=0
    echo "gpu_check: $name: $*"
    start=$(date +%s)
    (cd "$ROOT/bench" && timeout "$limit" "$@") >"$log" 2>&1 || status=$?
    local seconds=$(($(date +%s) - start))
    {
        echo "## $title"
        echo
        echo "\`\`\`"
        echo "cd bench && $*"
        echo "\`\`\`"
        echo
        echo "wall time: ${seconds} s (logs/$name.log)"
        echo
        # Tables, their captions and the result lines; not the progress
        # bars and library warnings of the raw log.
        grep -E '^\||^[A-Za-z_ ()0-9^.,-]+:|^(Runs|Summary|Where|Start-up|Exact|Encoder|Activation|[0-9]+ transcripts)' \
            "$log" | grep -vE 'Warning|warn|Loading|it/s|^INFO|^WARNING|^DEBUG' || true
        echo
    } >>"$REPORT"
    if ((status)); then
        echo "gpu_check: step $name failed with exit status $status" \
            "$([[ $status == 124 ]] && echo "(over its ${limit} s limit)")" >&2
        echo "---- last lines of logs/$name.log ----" >&2
        tail -n 25 "$log" >&2
        echo "**FAILED** with exit status $status" >>"$REPORT"
        fail "step $name failed"
    fi
    echo "gpu_check: $name done in ${seconds} s"
}

if ((SMOKE)); then
    TRAIN=(--config tiny --device cpu --steps 3 --warmup-steps 1 --rounds 1
        --per-language 6 --num-workers 0 --max-batch-seconds 8
        --work-dir "$WORK")
    EMBED=(--device cpu --seconds 1 --batch-sizes 2 --repeat 1
        --sizes 256,512 --dim 32 --block-size 128 --topk-max-size 512
        --precisions fp32,fp16 --work-dir "$WORK")
    TEACHER=(--teachers xlmr --texts 16 --epochs 2 --measured-epochs 1
        --device cpu --work-dir "$WORK")
    MEMORY=(--device cpu --budget-gib 4 --utterance-seconds 1
        --start-seconds 4 --cpu-points 2 --work-dir "$WORK")
    ABLATION_STEPS=(--steps 2)
else
    TRAIN=(--config full --device cuda --steps 60 --warmup-steps 5 --rounds 1
        --per-language 700 --num-workers "$WORKERS" --work-dir "$WORK")
    EMBED=(--device cuda --config full --sizes 100000,1000000
        --precisions fp32,fp16 --topk-max-size 1000000 --work-dir "$WORK")
    TEACHER=(--teachers xlmr --config full --device cuda --texts 8000
        --epochs 10 --measured-epochs 1 --work-dir "$WORK")
    MEMORY=(--config full --device cuda --work-dir "$WORK")
    ABLATION_STEPS=(--steps 30)
fi

step train_audio "Training: ours and upstream-style, decoding audio" 900 \
    "$PYTHON" train_throughput.py "${TRAIN[@]}"
step train_shards "Training: ours, reading feature shards" 600 \
    "$PYTHON" train_throughput.py "${TRAIN[@]}" --data-format shards \
    --pipelines ours
step embed "Encoder real-time factor and exact search" 600 \
    "$PYTHON" embed_throughput.py "${EMBED[@]}"
step teacher "Teacher cache build against recomputing" 600 \
    "$PYTHON" teacher_cache.py "${TEACHER[@]}"
if ((ABLATIONS)); then
    step ablate_unfused "Ablation: ours with per-tensor (unfused) Adam" 600 \
        "$PYTHON" train_throughput.py "${TRAIN[@]}" "${ABLATION_STEPS[@]}" \
        --pipelines ours --no-fused-optimizer
    step ablate_checkpointing "Ablation: ours with activation checkpointing" \
        600 "$PYTHON" train_throughput.py "${TRAIN[@]}" \
        "${ABLATION_STEPS[@]}" --pipelines ours --gradient-checkpointing
    step ablate_compile "Ablation: ours with torch.compile" 600 \
        "$PYTHON" train_throughput.py "${TRAIN[@]}" "${ABLATION_STEPS[@]}" \
        --pipelines ours --compile
    step memory "Largest max_batch_seconds that fits" 900 \
        "$PYTHON" memory_fit.py "${MEMORY[@]}"
fi
echo "gpu_check: all steps passed; report: $REPORT"
