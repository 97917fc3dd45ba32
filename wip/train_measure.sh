#!/bin/bash
cd /work/wt/train
export PYTHONPATH=$PWD/src SRJUDGE_DATA=/work/shared/data
PY=/work/main/.venv/bin/python
L=/tmp/train_logs; mkdir -p $L
echo "start $(date -u +%T) load $(cat /proc/loadavg)"
nice -n 10 $PY -m pytest -p no:cacheprovider -q tests/test_shared_prompt.py > $L/tests.log 2>&1; echo "tests rc=$? $(date -u +%T)"
tail -5 $L/tests.log
nice -n 10 $PY bench/dpo_precision.py --pairs 2 > $L/precision.log 2>&1; echo "precision rc=$? $(date -u +%T)"
tail -4 $L/precision.log
echo "bench start $(date -u +%T) load $(cat /proc/loadavg)"
$PY bench/dpo.py --pairs 8 --variants trl_adapter_disabled,ours,ours_bf16 > $L/bench.log 2>&1; echo "bench rc=$? $(date -u +%T)"
tail -5 $L/bench.log
