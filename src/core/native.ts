/**
 * Loads the addon once per thread. The main thread must load it before any worker does
 * (importing cmkit does that), so the addon, and the process-wide tables in it, stay
 * mapped for the life of the process; it is also linked with -z nodelete.
 *
 * CMKIT_ADDON may name another build of the same addon (for example one built with
 * AddressSanitizer).
 */
import { createRequire } from 'node:module';
import path from 'node:path';

import type { Addon } from './addon.js';

const requireAddon = createRequire(__filename);
const defaultPath = path.join(__dirname, '..', '..', '..', 'build', 'Release', 'cmkit.node');

export const addon: Addon = requireAddon(process.env['CMKIT_ADDON'] ?? defaultPath) as Addon;

/** Scratch words shared with the addon; layout in native/addon/addon_state.h. */
export const scratch: Uint32Array = addon.scratch;
export const ScratchWord = {
  Table: 0,
  Cell: 1,
  Volume: 2,
  Vnode: 3,
  Unique: 4,
  Hash: 5,
  Created: 6,
} as const;
