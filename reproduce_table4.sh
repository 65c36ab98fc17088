#!/usr/bin/env bash
# Reproduce Table 4 of the STOPA paper with the published procedure (config/table4/), for every
# system whose checkpoint is present, then write the report with the paper's numbers beside ours.
#
#   ./reproduce_table4.sh DATABASE_PATH [OUTPUT_DIR] [-- EXTRA STAGE ARGUMENTS]
#
# DATABASE_PATH is the STOPA corpus root (audio under wav/<ATK>/{dev,eval}/); its protocols are
# read from protocols_fingerprint_extraction/ and protocols_trials_extended/ here, or from
# folders of those names inside DATABASE_PATH when it has them (as Mini-STOPA does).
# OUTPUT_DIR defaults to table4_outputs. SYSTEMS="AASIST_CM AASIST_STOPA" limits the systems.
# Arguments after -- go to every stage, e.g.
#   ./reproduce_table4.sh mini_stopa/corpus runs/t4 -- --set reference_trial_file=AA01-co-10 --device cpu
set -euo pipefail
usage="usage: $0 DATABASE_PATH [OUTPUT_DIR] [-- EXTRA STAGE ARGUMENTS]"
case "${1:-}" in
  -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  -*) [ "$1" = "--" ] || { echo "error: unknown option $1" >&2; echo "$usage" >&2; exit 2; } ;;
esac
[ $# -ge 1 ] && [ "$1" != "--" ] || { echo "$usage" >&2; exit 2; }
db=$(realpath -m "$1"); shift
out=table4_outputs
if [ $# -ge 1 ] && [ "$1" != "--" ]; then out=$1; shift; fi
out=$(realpath -m "$out")
if [ $# -ge 1 ]; then
  [ "$1" = "--" ] || { echo "$usage" >&2; exit 2; }
  shift
fi
[ -d "$db" ] || { echo "error: $db: database folder not found" >&2; exit 2; }
cd "$(dirname "$0")"
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python

args=(--set "database_path=$db" --set "output_dir=$out")
if [ -d "$db/protocols_fingerprint_extraction" ] && [ -d "$db/protocols_trials_extended" ]; then
  echo "protocols: the folders inside $db"
  args+=(--set "enroll_protocol_dir=$db/protocols_fingerprint_extraction"
         --set "trial_protocol_dir=$db/protocols_trials_extended")
fi
systems=()
start=$(date +%s)
for system in ${SYSTEMS:-AASIST_CM AASIST_STOPA ResNet-34_STOPA}; do
  config=config/table4/$system.conf
  [ -f "$config" ] || { echo "error: $config: no Table 4 system $system" >&2; exit 2; }
  checkpoint=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["model_path"])' "$config")
  if [ ! -f "$checkpoint" ]; then
    echo "skipping $system: its checkpoint $checkpoint is not there (README.md, 'Reproducing Table 4')"
    continue
  fi
  for stage in fingerprint_embedding_extraction create_fingerprint_avg_emb_csv \
               trials_embedding_extraction cosine_sim compute_eer_pooled; do
    echo "== $system: $stage"
    "$PY" "$stage.py" --config "$config" "${args[@]}" --quiet "$@"
  done
  systems+=("$system")
done
[ ${#systems[@]} -gt 0 ] || { echo "error: no Table 4 checkpoint found" >&2; exit 2; }
echo
"$PY" -m sourcetrace.report "$out" "${systems[@]}" --paper
echo "(stages ran in $(( $(date +%s) - start )) s; outputs in $out)"
