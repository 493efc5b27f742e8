// The last line of `npm test`: what was skipped on this machine, and why (or that nothing was).
const { fuseUnavailable } = require('../dist/src/mount/fuse.js');
const { testUser } = require('../dist/test/helpers/mount-process.js');

const skipped = [];
const fuse = fuseUnavailable();
if (fuse !== undefined) skipped.push(`mount tests skipped: ${fuse}`);
const user = testUser();
if (typeof user === 'string') skipped.push(`unprivileged-user runs skipped: ${user}`);
console.log(skipped.length === 0 ? 'skipped: nothing (the mount and unprivileged-user tests ran)' : `skipped: ${skipped.join('; ')}`);
