#!/usr/bin/env bash
# Builds the addon with AddressSanitizer+UBSan (the same sources and defines as
# binding.gyp) and runs the JS test suite against it. Node itself is not instrumented, so
# the ASan runtime is preloaded, and leak detection is off: Node does not free everything
# at exit by design. UBSan's vptr check is off: it needs RTTI for every polymorphic type,
# and the V8 backing stores the addon holds (shared_ptr control blocks made inside Node,
# which is built without RTTI) would all look like objects of no known type. Any other
# report fails the run.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=native/test/out
mkdir -p "$out"
addon_api=$(node -p "require('node-addon-api').include_dir")
node_include=${NODE_INCLUDE:-$(node -p "require('path').join(process.config.variables.node_prefix || '/usr', 'include', 'node')")}
[ -f "$node_include/node_api.h" ] || node_include=/usr/include/node

"${CXX:-g++}" -std=c++20 -O1 -g -fno-omit-frame-pointer -fPIC -shared \
  -fsanitize=address,undefined -fno-sanitize=vptr -fno-sanitize-recover=all -fno-exceptions \
  -DNAPI_VERSION=8 -DNODE_ADDON_API_DISABLE_DEPRECATED -DNODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS \
  -DNODE_ADDON_API_DISABLE_CPP_EXCEPTIONS \
  -I"$node_include" -I"$addon_api" \
  native/addon/*.cpp native/core/*.cpp native/fuse/*.cpp \
  -Wl,-z,nodelete -o "$out/cmkit-asan.node"
runtime=$("${CXX:-g++}" -print-file-name=libasan.so)
export LD_PRELOAD=$runtime
export ASAN_OPTIONS="detect_leaks=0 halt_on_error=1 abort_on_error=1 handle_segv=0 allow_user_segv_handler=1"
export UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1"
export CMKIT_ADDON=$PWD/$out/cmkit-asan.node
# The debug lock checks of src/cache, as in test:js.
export CMKIT_DEBUG_LOCKS=1
# A smaller fsx run: the full one already ran against the release build.
export CMKIT_FSX_OPS=${CMKIT_FSX_OPS:-10000}
export CMKIT_MOUNT_FSX_OPS=${CMKIT_MOUNT_FSX_OPS:-10000}
echo "JS suite against $CMKIT_ADDON (ASan+UBSan)"
node --test dist/test/*.test.js
