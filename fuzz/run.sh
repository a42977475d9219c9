#!/bin/sh
# run.sh - run the libFuzzer targets built by `make fuzz-build` (make fuzz).
#
#   fuzz/run.sh [target...]        default: every fuzz/fuzz_<target>.c
#
# Each target runs for FUZZ_SECONDS (default 30) on its working corpus
# $FUZZ_BUILD/corpus/<target>, which starts from (and never writes to) the
# checked-in seeds in fuzz/corpus/<target> and the known crashers in
# fuzz/regressions/<target>. Prints one line per target (executions,
# exec/s, coverage, slowest input) and exits non-zero if any target
# crashed, leaked, timed out or broke an invariant; the input that did it
# is left in $FUZZ_BUILD/artifacts/<target>/ and the log's tail is shown.
set -u
cd "$(dirname "$0")/.."
B=${FUZZ_BUILD:-build-fuzz}
S=${FUZZ_SECONDS:-30}

if [ $# -eq 0 ]; then
    set -- $(ls fuzz/fuzz_*.c | sed 's,fuzz/fuzz_\(.*\)\.c,\1,')
fi

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

failed=""
for t in "$@"; do
    bin="$B/fuzz_$t"
    if [ ! -x "$bin" ]; then
        echo "fuzz $t: $bin not built (make fuzz-build)"; failed="$failed $t"; continue
    fi
    work="$B/corpus/$t"; art="$B/artifacts/$t"; log="$B/logs/$t.log"
    mkdir -p "$work" "$art" "$B/logs"

    # Per-target limits: -timeout is per input. UA inputs past 1024 bytes
    # are never looked at; config files may be long (4 KB line limit).
    timeout=5; max_len=8192
    case "$t" in
        ua) timeout=10; max_len=1100 ;;
        config) max_len=16384 ;;
        url) max_len=4200 ;;
        event_codec) max_len=12000 ;;
    esac
    dict=""
    [ -f "fuzz/dict/$t.dict" ] && dict="-dict=fuzz/dict/$t.dict"
    dirs="$work fuzz/corpus/$t"
    [ -d "fuzz/regressions/$t" ] && dirs="$dirs fuzz/regressions/$t"

    # shellcheck disable=SC2086
    "$bin" -max_total_time="$S" -timeout="$timeout" -max_len="$max_len" -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$art/" $dict $dirs >"$log" 2>&1
    rc=$?

    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    slow=$(sed -n 's/^stat::slowest_unit_time_sec: *//p' "$log")
    cov=$(grep -a -E '^#[0-9]+' "$log" | tail -1 | sed -n 's/.*\(cov: [0-9]*\).*\(ft: [0-9]*\).*\(corp: [^ ]*\).*/\1 \2 \3/p')
    if [ $rc -ne 0 ]; then
        echo "fuzz $t: FAILED (exit $rc) after ${execs:-?} inputs; log $log"
        grep -a -E 'ERROR:|invariant broken|runtime error|SUMMARY|Test unit written' "$log" | head -20
        failed="$failed $t"
    else
        echo "fuzz $t: ${execs:-?} inputs in ${S}s, ${rate:-?} exec/s, ${cov:-cov ?}, slowest input ${slow:-?}s"
    fi
done

if [ -n "$failed" ]; then
    echo "fuzz: failed:$failed (inputs in $B/artifacts/<target>/; after fixing, keep each as fuzz/regressions/<target>/<name>)"
    exit 1
fi
echo "fuzz: no crashes"
