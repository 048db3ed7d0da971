// Every task the worker pool can run, by name. Tasks are pure functions of a small, cloneable input.
export { hashPassword, verifyPassword } from './passwords.ts';
export { sealBatch, openBatch } from './crypto.ts';
export { describeImage } from './images.ts';
