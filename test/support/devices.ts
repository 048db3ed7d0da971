// Devices in tests: sign a user in on another device session, upload its keys, fetch bundles.
import type { App } from '../../src/server/app.ts';
import { newDevice, uploadInput, type Bundle, type E2EDevice } from './e2e-client.ts';
import { gql, type TestUser } from './helpers.ts';
import { LOGIN } from './operations.ts';

export const DEVICE_FIELDS = 'id identityKey createdAt lastSeenAt oneTimePreKeyCount user { id }';
export const UPLOAD_DEVICE_KEYS = `mutation ($input: UploadDeviceKeysInput!) { uploadDeviceKeys(input: $input) { ${DEVICE_FIELDS} } }`;
export const PRE_KEY_BUNDLES = `query ($u: ID!, $d: [ID!]) { preKeyBundles(userId: $u, deviceIds: $d) {
  device { id lastSeenAt user { id } } identityKey signedPreKey { keyId publicKey signature } oneTimePreKey { keyId publicKey } } }`;
export const DEVICE_KEY_EVENTS = 'subscription { deviceKeyEvents { type user { id } remaining } }';

/** A signed-in device session of `user` (its access token) with keys generated and uploaded. */
export interface TestDevice extends E2EDevice {
  user: TestUser;
  token: string;
}

/** Signs `user` in once more: a new device session. */
export async function signInAgain(app: App, user: TestUser): Promise<string> {
  const result = await gql(app, LOGIN, { input: { login: user.username, password: user.password } }, { headers: { 'user-agent': 'second device' } });
  if (!result.data?.login) throw new Error(`login failed: ${JSON.stringify(result.errors)}`);
  return result.data.login.accessToken;
}

/** Uploads fresh keys (with `oneTimeCount` one-time pre-keys) for the session of `token`. */
export async function addDevice(app: App, user: TestUser, token = user.accessToken, oneTimeCount = 20): Promise<TestDevice> {
  const device = newDevice('');
  const result = await gql(app, UPLOAD_DEVICE_KEYS, { input: uploadInput(device.keys, oneTimeCount) }, { token });
  if (!result.data?.uploadDeviceKeys) throw new Error(`uploadDeviceKeys failed: ${JSON.stringify(result.errors)}`);
  device.id = result.data.uploadDeviceKeys.id;
  return Object.assign(device, { user, token });
}

export async function fetchBundles(app: App, token: string, userId: string, deviceIds?: string[]): Promise<Bundle[]> {
  const result = await gql(app, PRE_KEY_BUNDLES, { u: userId, d: deviceIds ?? null }, { token });
  if (!result.data?.preKeyBundles) throw new Error(`preKeyBundles failed: ${JSON.stringify(result.errors)}`);
  return result.data.preKeyBundles;
}
