#!/usr/bin/env bash
# The fine-tuning walk-through of examples/finetune/README.md, end to end, on the CPU:
# a Hugging Face folder in, a fine-tuned Hugging Face folder out.
# usage: examples/finetune/run.sh [path/to/spillway]   (from the repository root)
set -euo pipefail
spillway=${1:-build/spillway}
ex=examples/finetune
rm -rf runs/finetune
# 0. A base model in Hugging Face format. With a real model, skip this: point model.init_from
#    at its folder (config.json + *.safetensors) and use its tokenizer.json.
"$spillway" train $ex/base.json
"$spillway" export $ex/base.json --checkpoint runs/finetune/base-checkpoints \
  --output runs/finetune/base-hf --format hf
# 1. Instruction data: prompt tokens are masked from the loss, each example ends with EOS.
"$spillway" prepare --tokenizer $ex/tokenizer.json --format jsonl --input $ex/data.jsonl \
  --output runs/finetune/train.tok --val-output runs/finetune/val.tok --val-fraction 0.1
# 2. Fine-tune from the base (model.init_from), AdamW offloaded to CPU memory.
"$spillway" train $ex/config.json | tee runs/finetune/train.log
# 3. The fine-tuned model as a Hugging Face folder (transformers' from_pretrained loads it).
"$spillway" export $ex/config.json --checkpoint runs/finetune/checkpoints \
  --output runs/finetune/finetuned-hf --format hf
ls runs/finetune/finetuned-hf
# The run learned the task: the validation loss on the responses ends far below the ~10 nats
# the base starts from.
final=$(grep "^eval step 200" runs/finetune/train.log | sed -E 's/.*val loss ([0-9.]+).*/\1/')
echo "final validation loss: $final"
awk -v v="$final" 'BEGIN { exit !(v > 0 && v < 2.0) }'
