// Profile pictures are uploads served by this API: set from one's own IMAGE upload, shown to any
// signed-in user through a signed link, removable, kept by the upload clean-up while in use; third-party
// URLs are refused.
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { deleteUnusedUploads } from '../src/files/cleanup.ts';
import type { App } from '../src/server/app.ts';
import { codeOf, fetchPath, gql, registerUser, useUploadTestApp, uploadThroughFetch, type TestUser } from './support/helpers.ts';

const UPDATE = `mutation ($input: UpdateProfileInput!) { updateProfile(input: $input) { id avatarUrl avatar { id width height } } }`;
const PROFILE = `query ($id: ID!) { user(id: $id) { avatarUrl avatar { id url width height } } }`;

let app: App;
let alice: TestUser;
let stranger: TestUser;

useUploadTestApp({}, (started) => (app = started));
beforeAll(async () => {
  [alice, stranger] = await Promise.all([registerUser(app), registerUser(app)]);
});

const png = (width: number, height: number) =>
  sharp({ create: { width, height, channels: 3, background: { r: 20, g: 120, b: 200 } } }).png().toBuffer();

const setAvatar = (user: TestUser, input: Record<string, unknown>) => gql(app, UPDATE, { input }, { token: user.accessToken });

describe('profile pictures', () => {
  it('are an IMAGE upload of your own, shown to any signed-in user through links this API signs', async () => {
    const picture = await uploadThroughFetch(app, alice.accessToken, await png(800, 600));
    const set = await setAvatar(alice, { avatarAttachmentId: picture.id });
    expect(set.errors).toBeUndefined();
    expect(set.data.updateProfile.avatar).toEqual({ id: picture.id, width: 800, height: 600 });
    expect(set.data.updateProfile.avatarUrl).toMatch(new RegExp(`^http://kocmoc\\.test/files/${picture.id}/thumbnail\\?u=${alice.id}&expires=\\d+&sig=`));

    // Someone who shares no chat with alice sees her picture, through links signed for them.
    const seen = await gql(app, PROFILE, { id: alice.id }, { token: stranger.accessToken });
    const { avatarUrl, avatar } = seen.data.user;
    expect(avatarUrl).toMatch(new RegExp(`^http://kocmoc\\.test/files/${picture.id}/thumbnail\\?u=${stranger.id}&`));
    const thumbnail = await fetchPath(app, avatarUrl);
    expect(thumbnail.status).toBe(200);
    expect(thumbnail.headers.get('content-type')).toBe('image/webp');
    const { width, height } = await sharp(Buffer.from(await thumbnail.arrayBuffer())).metadata();
    expect(Math.max(width!, height!)).toBe(320);
    const full = await fetchPath(app, avatar.url);
    expect(full.status).toBe(200);
    expect(full.headers.get('content-type')).toBe('image/png');
  });

  it('can be removed, after which the old links find nothing', async () => {
    const user = await registerUser(app);
    const picture = await uploadThroughFetch(app, user.accessToken, await png(64, 64));
    await setAvatar(user, { avatarAttachmentId: picture.id });
    const link = (await gql(app, PROFILE, { id: user.id }, { token: stranger.accessToken })).data.user.avatarUrl;
    expect((await fetchPath(app, link)).status).toBe(200);

    const removed = await setAvatar(user, { avatarAttachmentId: null });
    expect(removed.data.updateProfile).toMatchObject({ avatarUrl: null, avatar: null });
    expect((await gql(app, PROFILE, { id: user.id }, { token: stranger.accessToken })).data.user).toEqual({ avatarUrl: null, avatar: null });
    // No longer a profile picture and never sent: the upload is its uploader's alone again.
    expect((await fetchPath(app, link)).status).toBe(404);

    // The deprecated avatarUrl still removes a picture with null.
    await setAvatar(user, { avatarAttachmentId: picture.id });
    expect((await setAvatar(user, { avatarUrl: null })).data.updateProfile.avatar).toBeNull();
  });

  it('refuses third-party URLs, other people’s uploads, non-images and unknown ids', async () => {
    const strangersPicture = await uploadThroughFetch(app, stranger.accessToken, await png(32, 32));
    const file = await uploadThroughFetch(app, alice.accessToken, Buffer.from('just some text'), { kind: 'FILE', name: 'a.txt' });
    const cases: Array<[Record<string, unknown>, string]> = [
      // The finding: any http(s) URL was accepted, an internal address included.
      [{ avatarUrl: 'http://169.254.169.254/latest' }, 'input.avatarUrl'],
      [{ avatarUrl: 'https://tracker.example.com/pixel.gif' }, 'input.avatarUrl'],
      [{ avatarAttachmentId: strangersPicture.id }, 'input.avatarAttachmentId'],
      [{ avatarAttachmentId: file.id }, 'input.avatarAttachmentId'],
      [{ avatarAttachmentId: '0190aaaa-0000-7000-8000-000000000000' }, 'input.avatarAttachmentId'],
    ];
    const before = (await gql(app, PROFILE, { id: alice.id }, { token: alice.accessToken })).data.user.avatar;
    for (const [input, field] of cases) {
      const result = await setAvatar(alice, input);
      expect(codeOf(result), JSON.stringify(input)).toBe('BAD_USER_INPUT');
      expect(result.errors?.[0]?.extensions?.field).toBe(field);
    }
    expect((await gql(app, PROFILE, { id: alice.id }, { token: alice.accessToken })).data.user.avatar).toEqual(before);
  });

  it('are kept by the clean-up of unused uploads while in use, and cleaned up once replaced', async () => {
    const user = await registerUser(app);
    const first = await uploadThroughFetch(app, user.accessToken, await png(40, 40));
    const second = await uploadThroughFetch(app, user.accessToken, await png(50, 50));
    await setAvatar(user, { avatarAttachmentId: first.id });
    await setAvatar(user, { avatarAttachmentId: second.id });
    // Backdated far enough that the clean-up's cut-off takes in these uploads and no other test's.
    const { prisma } = app.services;
    await prisma.attachment.updateMany({ where: { uploaderId: user.id }, data: { createdAt: new Date('2001-01-01T00:00:00Z') } });
    await deleteUnusedUploads(app.services, new Date('2001-01-02T00:00:00Z'));
    const left = await prisma.attachment.findMany({ where: { uploaderId: user.id }, select: { id: true } });
    expect(left.map((row) => row.id)).toEqual([second.id]);
    const profile = await gql(app, PROFILE, { id: user.id }, { token: stranger.accessToken });
    expect((await fetchPath(app, profile.data.user.avatarUrl)).status).toBe(200);
  });
});
