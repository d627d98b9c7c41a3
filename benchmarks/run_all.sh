#!/usr/bin/env bash
# Run every tb_featmap benchmark, one after the other (they time things: never in parallel).
#   benchmarks/run_all.sh            # full runs, minutes on 2 cores (writer, server,
#                                    # statistics, S3, recorder, then the browser ones)
#   benchmarks/run_all.sh --quick    # smoke runs, about 2 minutes
# PYTHON picks the interpreter (default: the repo's .venv, else python3).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
python="${PYTHON:-$repo/.venv/bin/python}"
[ -x "$python" ] || python=python3
quick=()
for arg in "$@"; do
    case "$arg" in
        --quick) quick=(--quick) ;;
        *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
    esac
done
"$python" "$here/bench_writer.py" "${quick[@]}"
echo
"$python" "$here/bench_server.py" "${quick[@]}"
echo
"$python" "$here/bench_stats.py" "${quick[@]}"
echo
"$python" "$here/bench_s3.py" "${quick[@]}"
echo
"$python" "$here/bench_recorder.py" "${quick[@]}"
echo
# In the browser: slider change to painted grid, cached and not, per AlexNet conv layer; a
# cached step with the overlay and top K; a cached step of one layer of each layout.
"$python" -m pytest "$repo/tests/browser/test_bench_frontend.py" -m benchmark -q -s -p no:cacheprovider
