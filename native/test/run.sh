#!/usr/bin/env bash
# Builds each standalone core test twice, under ThreadSanitizer and under
# AddressSanitizer+UndefinedBehaviorSanitizer, and runs it. Any report fails the run.
# Usage: native/test/run.sh [seed]   (each test prints its seed; pass it to replay)
set -euo pipefail
cd "$(dirname "$0")"
out=out
mkdir -p "$out"
seed=${1:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}

cxx=${CXX:-g++}
common=(-std=c++20 -O1 -g -fno-omit-frame-pointer -Wall -Wextra -Werror -pthread)
declare -A flavours=(
  [tsan]="-fsanitize=thread"
  [asan]="-fsanitize=address,undefined -fno-sanitize-recover=all"
)
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
export ASAN_OPTIONS="halt_on_error=1 detect_leaks=1 abort_on_error=1"
export UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1"

# test name -> the core sources it links
declare -A tests=(
  [fid_test]=""
  [ref_table_stress]="../core/ref_table.cpp ../core/asymmetric_fence.cpp"
  [rw_lock_stress]=""
  [cache_file_test]="../core/cache_file.cpp ../core/checksum.cpp ../core/ref_table.cpp ../core/asymmetric_fence.cpp"
  [fuse_wire_test]="../fuse/fuse_wire.cpp"
  [read_hit_test]="../core/read_hit.cpp ../core/ref_table.cpp ../core/asymmetric_fence.cpp"
)
names=(fid_test ref_table_stress rw_lock_stress cache_file_test fuse_wire_test read_hit_test)
# The FUSE session (it mounts for real: it skips itself, saying why, without /dev/fuse or root).
tests[fuse_session_stress]="../fuse/fuse_session.cpp ../fuse/fuse_wire.cpp ../fuse/fuse_mount.cpp"
names+=(fuse_session_stress)

passed=0
failed=0
for flavour in tsan asan; do
  for t in "${names[@]}"; do
    bin="$out/$t-$flavour"
    # shellcheck disable=SC2086
    "$cxx" "${common[@]}" ${flavours[$flavour]} "$t.cpp" ${tests[$t]} -o "$bin"
    echo "== $t under $flavour"
    if "./$bin" "$seed"; then
      passed=$((passed + 1))
    else
      echo "FAILED: $t under $flavour (replay: native/test/run.sh $seed)"
      failed=$((failed + 1))
    fi
  done
done
echo "native: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
