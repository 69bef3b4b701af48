#!/usr/bin/env bash
# Campaign runner for the stress harness (tools/stress-mix/src/main.rs).
#
#   ./run.sh FIRST_SEED RUNS LOGFILE
#
# Runs seeds FIRST_SEED .. FIRST_SEED+RUNS-1 in chunks of CHUNK (default 1000) runs per process.
# The forced-shape variables (F_PERMITS F_MAXK F_THREADS F_TASKS F_POOL F_MGR CLOSE_MID SCALE
# F_GAP F_WATCHDOG) are passed through from the environment. On a failure (a FAIL line, non-zero
# exit) it appends one line to LOGFILE and goes on from the seed after the failing one. NAIVE
# lines (false positives of the unsound two-atomics check; not failures) are appended as NOTE
# lines. A SUMMARY line is appended every 1000 runs and at the end.
#
# Example:
#   F_PERMITS=2 F_MAXK=1 F_THREADS=0 F_MGR=1 CLOSE_MID=1 tools/stress-mix/run.sh 1 100000 /tmp/shape.log
set -u

if [ $# -ne 3 ]; then
    echo "usage: $0 FIRST_SEED RUNS LOGFILE" >&2
    exit 64
fi
first=$1
runs=$2
log=$3
chunk=${CHUNK:-1000}

here=$(cd "$(dirname "$0")" && pwd)
bin="${CARGO_TARGET_DIR:-$here/../../target}/release/stress-mix"
# Always: a no-op when the binary is fresh, and never a campaign of a stale build.
(cd "$here" && cargo build --quiet --release -p stress-mix) || exit 1

shape=""
for v in F_PERMITS F_MAXK F_THREADS F_TASKS F_POOL F_MGR CLOSE_MID SCALE F_GAP F_WATCHDOG F_SELFTEST; do
    if [ -n "${!v:-}" ]; then shape="$shape $v=${!v}"; fi
done
shape="${shape# }"
[ -n "$shape" ] || shape="(random shapes)"

ts() { date -u +%Y-%m-%dT%H:%M:%SZ; }

end=$((first + runs))
seed=$first
done_runs=0
fails=0
n_oversub=0 n_cons=0 n_hang=0 n_panic=0 n_crash=0 n_naive=0
next_summary=1000
start=$(date +%s)
out=$(mktemp /tmp/stress_mix.XXXXXX)
trap 'rm -f "$out"' EXIT

echo "$(ts) START seeds=$first..$((end - 1)) chunk=$chunk shape=[$shape] pid=$$ bin=$bin" >>"$log"

summary() {
    local now el rate
    now=$(date +%s)
    el=$((now - start))
    if [ "$el" -gt 0 ]; then rate=$((done_runs * 60 / el)); else rate="-"; fi
    echo "$(ts) SUMMARY$1 runs=$done_runs/$runs next_seed=$seed failures=$fails (oversub=$n_oversub conservation=$n_cons hang=$n_hang panic=$n_panic crash=$n_crash) naive_notes=$n_naive elapsed=${el}s runs_per_min=$rate shape=[$shape]" >>"$log"
}

while [ "$seed" -lt "$end" ]; do
    n=$((end - seed))
    [ "$n" -gt "$chunk" ] && n=$chunk
    SEED_START=$seed RUNS=$n "$bin" >"$out" 2>&1
    rc=$?
    naive=$(grep -c '^NAIVE' "$out")
    if [ "$naive" -gt 0 ]; then
        n_naive=$((n_naive + naive))
        grep '^NAIVE' "$out" | sed "s/^/$(ts) NOTE /; s/\$/ env=[$shape]/" >>"$log"
    fi
    if [ "$rc" -eq 0 ]; then
        seed=$((seed + n))
        done_runs=$((done_runs + n))
    else
        fails=$((fails + 1))
        line=$(grep -m1 '^FAIL' "$out")
        if [ -n "$line" ]; then
            fseed=$(sed -n 's/.* seed=\([0-9]*\).*/\1/p' <<<"$line")
            case "$line" in
                "FAIL oversub"*) n_oversub=$((n_oversub + 1)) ;;
                "FAIL conservation"*) n_cons=$((n_cons + 1)) ;;
                "FAIL hang"*) n_hang=$((n_hang + 1)) ;;
                *) n_panic=$((n_panic + 1)) ;;
            esac
            echo "$(ts) $line rc=$rc env=[$shape]" >>"$log"
        else
            # killed by a signal or died without its line: the seed is not known, skip the chunk
            n_crash=$((n_crash + 1))
            fseed=$((seed + n - 1))
            echo "$(ts) FAIL crash rc=$rc seeds=$seed..$fseed (seed unknown) last_output=[$(tail -c 300 "$out" | tr '\n' ' ')] env=[$shape]" >>"$log"
        fi
        if [ -z "$fseed" ] || [ "$fseed" -lt "$seed" ] || [ "$fseed" -ge "$end" ]; then fseed=$((seed + n - 1)); fi
        done_runs=$((done_runs + fseed - seed + 1))
        seed=$((fseed + 1))
    fi
    while [ "$done_runs" -ge "$next_summary" ]; do
        summary ""
        next_summary=$((next_summary + 1000))
    done
done
summary " END"
[ "$fails" -eq 0 ]
