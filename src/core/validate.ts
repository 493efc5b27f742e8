import { invalidArgType, outOfRange } from './errors.js';

export const UINT32_MAX = 0xffff_ffff;

/** Throws TypeError for a non-number, RangeError for NaN, fractions or out of [min, max]. */
export function checkInteger(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw outOfRange(name, `an integer >= ${min} and <= ${max}`, value);
  }
  return value;
}

export function checkUint32(value: unknown, name: string): number {
  return checkInteger(value, name, 0, UINT32_MAX);
}

export function checkObject(value: unknown, name: string): object {
  if (typeof value !== 'object' || value === null) throw invalidArgType(name, 'of type object', value);
  return value;
}
