#!/usr/bin/env bash
# Table 2 on a CPU-only machine: every command behind bench/results/table2.md, in order.
# Each command resumes or skips finished work: rerun the script after a stop to continue.
#   bash examples/distill-cpu-paper.sh [STAGE...]     stages: teacher students eval report (default: all)
# Run from a folder where runs/ may grow (several GB); EX points at the examples folder.
set -euo pipefail
EX=${EX:-$(dirname "$0")}
T=${TINYACT:-tinyact}
C=$EX/distill-cpu-paper.yaml NP=$EX/distill-cpu-paper-noprefix.yaml
W=runs/distill-paper-cpu WN=runs/distill-paper-cpu-noprefix
STUDENTS=${STUDENTS:-"qwen2.5-coder-0.5b smollm2-135m"}
declare -A QUANT=([qwen2.5-coder-0.5b]=q8_0 [smollm2-135m]=q8_0)  # lower erased the LoRA (export: model.gguf.check.json):
declare -A CATALOG_QUANT=([qwen2.5-coder-0.5b]=q4_k_m [smollm2-135m]=q4_1)  # q4_k_m kept 34% of the 0.5B's, q4_1 8% of smollm2's
declare -A NQ=([qwen2.5-coder-0.5b]=${N:-50} [smollm2-135m]=${N:-16})  # questions per benchmark: smollm2's agents
# loop to the step limit (~25 min per 8 questions on one core), so its rows take the first 16 (report: --first 16)
stages=${*:-teacher students eval report}

row() {  # row NAME MODEL METHOD PROMPT [K]: one Table-2 row (GSM-Hard, MATH-500, HotpotQA-distractor) on the
  # first $N questions; k=1 greedy, or K samples per step (self-consistency: T=0.4, top_p 0.8, seed 0)
  # agents get search() everywhere, as in their training data; CoT gets retrieved passages (RAG) on HotpotQA
  local name=$1 model=$2 method=$3 prompt=$4 k=${5:-1} b idx
  if [[ $model == *.gguf && ! -f $model ]]; then echo "skip $name: no $model yet"; return; fi
  for b in gsm-hard math500 hotpotqa-distractor; do
    idx=(--index runs/index/hd-bm25); [[ $method = cot && $b != hotpotqa-distractor ]] && idx=()
    $T eval run --benchmark "$b" --limit "$N" --method "$method" -k "$k" $([ "$k" -gt 1 ] && echo --seed 0) --parallel 8 "${idx[@]}" --model "$model" \
      --engine llamacpp --max-tokens $([ "$method" = cot ] && echo 1024 || echo 512) --max-steps 5 \
      $([ "$method" = agent ] && echo --prompt "$prompt") --out "runs/table2/$name/$b"
  done
}

if [[ " $stages " == *" teacher "* ]]; then
  [ -f runs/index/hd-bm25/.done ] || { $T index build ../shared/data/hotpotqa-distractor/{train,dev,test}.jsonl \
      --backend bm25 --out runs/index/hd-bm25 && touch runs/index/hd-bm25/.done; }
  $T distill collect "$C"          # first-thought prefixes, then the teacher agent with them
  $T distill collect "$NP"         # the same questions without prefixes
  $T distill cot "$C"              # the teacher's whole CoT answers (continuing the prefix stage's starts)
  for c in "$C" "$NP"; do $T distill filter "$c" && $T distill sft-data "$c"; done
  $T distill sft-data "$C" --data cot
fi
if [[ " $stages " == *" students "* ]]; then
  for s in $STUDENTS; do  # agent + FTP, agent, CoT: train (resumes from checkpoints), merge, GGUF for llama.cpp
    for job in "$C agent" "$NP agent" "$C cot"; do
      set -- $job
      $T distill train "$1" --student "$s" --data "$2"
      $T distill export "$1" --student "$s" --data "$2" --gguf "${QUANT[$s]}"
    done
  done
fi
if [[ " $stages " == *" eval "* ]]; then
  for s in $STUDENTS; do  # the untuned model at its students' quantization: the catalog's GGUF where it ships
    base=$s                # that one, else exported from its prepared folder (both here: the catalog has q4 only)
    if [[ ${QUANT[$s]} != "${CATALOG_QUANT[$s]}" ]]; then
      base=runs/base/$s-${QUANT[$s]}.gguf
      [ -f "$base" ] || $T models export-gguf "$($T models path "$s")" --out "$base" --quant "${QUANT[$s]}"
    fi
    N=${NQ[$s]}
    row "$s-untuned" "$base" agent full
    row "$s-agent" "$WN/students/$s-agent/merged/model.gguf" agent short
    row "$s-agent-ftp" "$W/students/$s-agent/merged/model.gguf" agent short
    row "$s-cot" "$W/students/$s-cot/merged/model.gguf" cot -
  done
  N=${NQ[qwen2.5-coder-0.5b]}  # + self-consistency (the paper's SAG, k=8) on the 0.5B FTP student, as the paper's last row
  row qwen2.5-coder-0.5b-agent-ftp-k8 "$W/students/qwen2.5-coder-0.5b-agent/merged/model.gguf" agent short 8
fi
if [[ " $stages " == *" report "* ]]; then
  rows=()
  for s in $STUDENTS; do
    rows+=(--row "$s untuned (full prompt)=runs/table2/$s-untuned" --row "$s CoT-distilled=runs/table2/$s-cot"
           --row "$s agent-distilled=runs/table2/$s-agent" --row "$s agent-distilled + FTP=runs/table2/$s-agent-ftp")
    [ -d "runs/table2/$s-agent-ftp-k8" ] && rows+=(--row "$s agent-distilled + FTP + SAG (k=8)=runs/table2/$s-agent-ftp-k8")
  done
  python -m tinyact.bench.table2 "${rows[@]}" --teacher "with prefix=$W" --teacher "without prefix=$WN" --cot "$W" \
    --out "${OUT:-bench/results}/table2.md"
  python -m tinyact.bench.table2 "${rows[@]}" --first 16 --out "${OUT:-bench/results}/table2-first16.md"  # every row
fi
