#!/usr/bin/env bash
# The units study (docs/results.md "The study"): every configuration with seeds 0, 1 and 2
# through the DVC queue, then `python tools/compare.py --results docs/results.md` tabulates them.
#   tools/study.sh                 # queue them all
#   tools/study.sh cpc k128        # queue only these configurations
#   SEEDS="2" tools/study.sh jitonly   # only these seeds
#   dvc queue start -j 1           # run them (about 3.5 min each on 2 cores; -j 2 with train.threads=1)
set -euo pipefail
# name: normalize latent_norm jitter decoder_kernel [param=value ...]
# (the four knobs named every time, whatever params.yaml says; VQ-CPC and CPC have no decoder to
# jitter; train.epochs=15 where the run was made before 30 became the default; `long` is the
# default run; `cpcunits` is CPC with k-means units, the line-up's contrastive family; `cpcutt`
# the same with negatives from the positive's own utterance; `static` the VQ-VAE rebuilding only
# the static cepstra; `hubert` masked prediction of k-means classes, k-means units, `hubertin`
# the same masked at the input frames; `adversary` the VQ-VAE with a speaker adversary;
# `vqcpcpub` VQ-CPC with the published model's choices: frame-local encoder, K = 512, 1.28 s
# crops, LSTM 256, 8 speakers x 4 distinct utterances per batch, 500 warm-up steps; `views` the
# VQ-VAE reading two views of each train utterance besides the original, rebuilding the original;
# `hubertviews` HuBERT predicting the original's classes from them; `viewsstatic` views with the
# static target; `views4static` the same with four views, `views4static45` and 45 epochs;
# `epochs25` the default trained 25 epochs, what `make repro`'s 10 minutes would cost)
configs=(
  "base: none none 0.12 3 train.epochs=15"
  "cmvn: utterance none 0.12 3 train.epochs=15"
  "lnorm: none sequence 0.12 3 train.epochs=15"
  "jitonly: none none 0.5 3 train.epochs=15"
  "k1only: none none 0.12 1 train.epochs=15"
  "jit: none none 0.5 1 train.epochs=15"
  "all: utterance sequence 0.5 1 train.epochs=15"
  "cpc: none none 0.5 1 model.family=vqcpc model.cpc.causal=false train.epochs=15"
  "causalcpc: none none 0.5 1 model.family=vqcpc model.cpc.causal=true train.epochs=15"
  "causalcpc128: none none 0.5 1 model.family=vqcpc model.cpc.causal=true train.crop_frames=128 model.cpc.context_dim=256 train.epochs=15"
  "k128: none none 0.5 1 model.quantizer.codebook_size=128 train.epochs=15"
  "long: none none 0.5 1 train.epochs=30"
  "target: none none 0.5 1 model.target=logmel train.epochs=15"
  "logmel: none none 0.5 1 features.kind=logmel train.epochs=15"
  "cpcunits: none none 0.5 1 model.family=cpc"
  "cpcutt: none none 0.5 1 model.family=cpc model.cpc.negatives_from=utterance"
  "static: none none 0.5 1 model.target=static"
  "hubert: none none 0.5 1 model.family=hubert"
  "hubertin: none none 0.5 1 model.family=hubert model.hubert.mask_at=input"
  "adversary: none none 0.5 1 model.adversary.weight=1.0"
  "views: none none 0.5 1 train.views=2"
  "hubertviews: none none 0.5 1 model.family=hubert train.views=2"
  "viewsstatic: none none 0.5 1 train.views=2 model.target=static"
  "views4static: none none 0.5 1 train.views=4 model.target=static"
  "views4static45: none none 0.5 1 train.views=4 model.target=static train.epochs=45"
  "epochs25: none none 0.5 1 train.epochs=25"
  "vqcpcpub: none none 0.5 1 model.family=vqcpc model.encoder=frame model.quantizer.codebook_size=512 train.crop_frames=128 model.cpc.context_dim=256 model.cpc.distinct_utterances=true train.warmup_steps=500"
)
wanted=" $* "
for name in "$@"; do
  if ! grep -q "^$name:" < <(printf '%s\n' "${configs[@]}"); then
    echo "study.sh: no configuration named '$name'; the names:$(printf ' %s' "${configs[@]%%:*}")" >&2
    exit 2
  fi
done
for seed in ${SEEDS:-0 1 2}; do
  for entry in "${configs[@]}"; do
    read -r name normalize latent_norm jitter kernel extra <<<"${entry/:/}"
    if [[ $# -gt 0 && "$wanted" != *" $name "* ]]; then
      continue
    fi
    overrides=()
    for kv in ${extra:-}; do
      overrides+=(-S "$kv")
    done
    dvc exp run --queue -n "$name-s$seed" -S "train.seed=$seed" \
      -S "features.normalize=$normalize" -S "model.latent_norm=$latent_norm" \
      -S "model.jitter=$jitter" -S "model.decoder_kernel=$kernel" ${overrides[@]+"${overrides[@]}"}
  done
done
dvc queue status
