{
  # Two targets: the core (C++20, no Node headers; native/test builds the same sources
  # under the sanitizers) and the thin addon that binds it. On Linux the addon also
  # carries the FUSE session (native/fuse/): it speaks the kernel's protocol itself
  # (linux/fuse.h, from the C library's kernel headers), so it needs no libfuse, and it
  # reaches the cache's tables and memory for the reads it serves on its own threads.
  'includes': ['common.gypi'],
  'targets': [
    {
      'target_name': 'cmkit_core',
      'type': 'static_library',
      'sources': ['native/core/ref_table.cpp', 'native/core/asymmetric_fence.cpp', 'native/core/backing_dir.cpp', 'native/core/cache_file.cpp', 'native/core/checksum.cpp', 'native/core/read_hit.cpp'],
    },
    {
      'target_name': 'cmkit',
      'dependencies': [
        'cmkit_core',
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api",
      ],
      'sources': [
        'native/addon/addon.cpp',
        'native/addon/addon_state.cpp',
        'native/addon/errors.cpp',
        'native/addon/ref_table_binding.cpp',
        'native/addon/rw_lock_binding.cpp',
        'native/addon/bench_binding.cpp',
        'native/addon/backing_binding.cpp',
        'native/addon/shared_memory.cpp',
        'native/addon/cache_file_binding.cpp',
      ],
      'defines': [
        'NAPI_VERSION=8',
        'NODE_ADDON_API_DISABLE_DEPRECATED',
        # A worker being terminated cannot take an exception; drop it instead of aborting.
        'NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS',
      ],
      # Keep the addon mapped until the process exits, even when the thread that loaded
      # it last goes away: the process-wide registries live in it.
      'ldflags': ['-Wl,-z,nodelete'],
      'conditions': [
        ['OS=="linux"', {
          'sources': [
            'native/fuse/fuse_wire.cpp',
            'native/fuse/fuse_mount.cpp',
            'native/fuse/fuse_session.cpp',
            'native/fuse/fuse_binding.cpp',
          ],
        }],
      ],
    },
  ],
}
