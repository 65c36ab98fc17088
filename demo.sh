#!/usr/bin/env bash
# One command: set up (a .venv with requirements.txt, once), then run the five stages for
# AASIST_CM and AASIST_STOPA on the bundled Mini-STOPA corpus, print the pooled EER table and
# write the evaluation report (demo_outputs/report.md; its path is printed last).
# Outputs go to demo_outputs/. Extra arguments go to every stage (e.g. --device cpu, --force).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r requirements.txt
fi
PY=.venv/bin/python
start=$(date +%s)
for config in config/demo.conf config/demo_AASIST_STOPA.conf; do
  for stage in fingerprint_embedding_extraction create_fingerprint_avg_emb_csv \
               trials_embedding_extraction cosine_sim compute_eer_pooled; do
    echo "== $config: $stage"
    "$PY" "$stage.py" --config "$config" --quiet "$@"
  done
done
echo "(Mini-STOPA; stages ran in $(( $(date +%s) - start )) s)"
echo
"$PY" -m sourcetrace.report demo_outputs AASIST_CM AASIST_STOPA
