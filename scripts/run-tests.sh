#!/bin/sh
# run-tests.sh - run every test binary under $BUILD/tests and sum the results.
#
#   scripts/run-tests.sh [unit|integration|browser]
#
# Each binary is a criterion suite; its "Synthesis" line is parsed and the
# totals are printed as the final "N passed, N failed" line. Exit non-zero
# if anything failed, crashed or printed a sanitizer report.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
which=${1:-all}
export VEIL_BUILD="$PWD/$BUILD"
export VEIL_ROOT="$PWD"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=23}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

passed=0; failed=0; bad=0
logdir=$(mktemp -d "${TMPDIR:-/tmp}/veil-tests.XXXXXX")
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    case "$which:$name" in
        browser:*) continue ;;
        unit:test_it_*) continue ;;
        integration:test_it_*) ;;
        integration:*) continue ;;
    esac
    log="$logdir/$name.log"
    # -j2: the machine has two cores; integration suites start real servers.
    timeout 600 "$t" -j2 --timeout 240 >"$log" 2>&1
    rc=$?
    syn=$(grep -a "Synthesis:" "$log" | tail -1)
    p=$(echo "$syn" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
    f=$(echo "$syn" | sed -n 's/.*Failing: \([0-9]*\).*/\1/p')
    c=$(echo "$syn" | sed -n 's/.*Crashing: \([0-9]*\).*/\1/p')
    p=${p:-0}; f=${f:-0}; c=${c:-0}
    if grep -aq -e "ERROR: AddressSanitizer" -e "runtime error:" -e "ERROR: LeakSanitizer" "$log"; then
        echo "== $name: sanitizer report"; bad=1
    fi
    if [ $rc -ne 0 ] || [ "$f" -ne 0 ] || [ "$c" -ne 0 ] || [ -z "$syn" ]; then
        echo "== $name FAILED (exit $rc)"; cat "$log"; bad=1
        [ -z "$syn" ] && f=$((f + 1))
    else
        grep -a -e "pass rate" "$log" || true
        echo "== $name: $syn" | sed 's/\x1b\[[0-9;]*m//g'
    fi
    passed=$((passed + p)); failed=$((failed + f + c))
done
# Node checks (no browser): every npm package runs on Debian 12's Node.js.
if [ "$which" = all ] || [ "$which" = unit ]; then
    for t in tests/node/*.mjs; do
        name=$(basename "$t" .mjs)
        log="$logdir/node-$name.log"
        timeout 60 node "$t" >"$log" 2>&1
        rc=$?
        line=$(grep -aE '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
        p=$(echo "$line" | sed -n 's/^\([0-9]*\) passed.*/\1/p')
        f=$(echo "$line" | sed -n 's/.* \([0-9]*\) failed.*/\1/p')
        p=${p:-0}; f=${f:-0}
        if [ $rc -ne 0 ] || [ "$f" -ne 0 ] || [ -z "$line" ]; then
            echo "== node/$name FAILED (exit $rc)"; cat "$log"; bad=1
            [ -z "$line" ] && f=$((f + 1))
        else
            echo "== node/$name: $line"
        fi
        passed=$((passed + p)); failed=$((failed + f))
    done
fi
# Browser suites (node + headless Chromium); each prints "N passed, N failed".
if [ "$which" = all ] || [ "$which" = browser ]; then
    for t in tests/browser/run.mjs tests/browser/dashboard.mjs tests/browser/compat.mjs; do
        name=$(basename "$t" .mjs)
        log="$logdir/browser-$name.log"
        VEIL_BUILD="$PWD/$BUILD" timeout 300 node "$t" >"$log" 2>&1
        rc=$?
        line=$(grep -aE '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
        p=$(echo "$line" | sed -n 's/^\([0-9]*\) passed.*/\1/p')
        f=$(echo "$line" | sed -n 's/.* \([0-9]*\) failed.*/\1/p')
        p=${p:-0}; f=${f:-0}
        if [ $rc -ne 0 ] || [ "$f" -ne 0 ] || [ -z "$line" ]; then
            echo "== browser/$name FAILED (exit $rc)"; cat "$log"; bad=1
            [ -z "$line" ] && f=$((f + 1))
        else
            echo "== browser/$name: $line"
        fi
        passed=$((passed + p)); failed=$((failed + f))
    done
fi
rm -rf "$logdir"
echo "$passed passed, $failed failed"
[ $bad -eq 0 ] && [ $failed -eq 0 ]
