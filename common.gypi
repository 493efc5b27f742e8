{
  'target_defaults': {
    'cflags_cc!': ['-std=gnu++17', '-std=c++17', '-fno-rtti'],
    'cflags_cc': ['-std=c++20', '-fvisibility=hidden', '-Wall', '-Wextra', '-Werror'],
    'default_configuration': 'Release',
    'configurations': {
      'Debug': {
        'defines': ['NODE_ADDON_API_ENABLE_TYPE_CHECK_ON_AS'],
        'cflags_cc': ['-O0', '-g'],
      },
      'Release': {
        'defines': ['NDEBUG'],
        'cflags_cc': ['-O2'],
      },
    },
  },
}
