// The links the API hands out are absolute: under PUBLIC_URL when it is set, else under the origin
// the request came to, so a client on another origin (a mobile app, a web client elsewhere) can use
// them as they are.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gql, registerUser, startUploadTestApp, uploadThroughFetch, type TestUser } from './support/helpers.ts';

type Started = Awaited<ReturnType<typeof startUploadTestApp>>;
const AVATAR = 'mutation ($a: ID) { updateProfile(input: { avatarAttachmentId: $a }) { avatarUrl } }';
const tinyPng = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', 'base64');

let plain: Started;
let behindProxy: Started;
let user: TestUser;
beforeAll(async () => {
  [plain, behindProxy] = await Promise.all([startUploadTestApp(), startUploadTestApp({ PUBLIC_URL: 'https://chat.example.com' })]);
  user = await registerUser(plain.app);
});
afterAll(async () => {
  await Promise.all([plain?.stop(), behindProxy?.stop()]);
});

describe('absolute links', () => {
  it('are under the origin the request came to, and work as they are', async () => {
    const form = new FormData();
    form.set('operations', JSON.stringify({ query: 'mutation ($f: File!) { uploadFile(file: $f, kind: IMAGE) { id url thumbnailUrl } }', variables: { f: null } }));
    form.set('map', JSON.stringify({ 0: ['variables.f'] }));
    form.set('0', new Blob([tinyPng]), 'dot.png');
    const response = await fetch(`${plain.base}/graphql`, { method: 'POST', headers: { authorization: `Bearer ${user.accessToken}` }, body: form });
    const { data } = (await response.json()) as { data: { uploadFile: { id: string; url: string; thumbnailUrl: string } } };
    expect(data.uploadFile.url.startsWith(`${plain.base}/files/${data.uploadFile.id}?`)).toBe(true);
    expect(data.uploadFile.thumbnailUrl.startsWith(`${plain.base}/files/${data.uploadFile.id}/thumbnail?`)).toBe(true);
    expect((await fetch(data.uploadFile.url)).status).toBe(200);
  });

  it('are under PUBLIC_URL when it is set, whatever the request came to', async () => {
    const owner = await registerUser(behindProxy.app);
    const upload = await uploadThroughFetch(behindProxy.app, owner.accessToken, tinyPng, { selection: 'id url' });
    expect(upload.url).toMatch(new RegExp(`^https://chat\\.example\\.com/files/${upload.id}\\?u=`));
    const profile = await gql(behindProxy.app, AVATAR, { a: upload.id }, { token: owner.accessToken });
    expect(profile.data.updateProfile.avatarUrl).toMatch(new RegExp(`^https://chat\\.example\\.com/files/${upload.id}/thumbnail\\?`));
  });
});
