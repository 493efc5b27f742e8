// After the addon is built at install time: says how to get `cmkit mount` where the
// FUSE addon could not be built (everything else works without it).
const { existsSync } = require('node:fs');
const path = require('node:path');

if (process.platform === 'linux' && !existsSync(path.join(__dirname, '..', 'build', 'Release', 'cmkit_fuse.node'))) {
  console.log(
    'cmkit: built without `cmkit mount`: libfuse3 development files were not found.\n' +
      'cmkit: for the mount on Debian/Ubuntu: sudo apt-get install fuse3 libfuse3-dev pkg-config, then npm rebuild cmkit',
  );
}
