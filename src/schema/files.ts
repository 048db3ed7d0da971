// Files: uploads (GraphQL multipart request spec) and the Attachment type with its download links.
import { requireViewer } from '../auth/authenticate.ts';
import type { Context } from '../context.ts';
import { badUserInput } from '../errors.ts';
import { viewerFileUrl, type FileVariant } from '../files/signed-urls.ts';
import { uploadFile, type UploadedFile } from '../files/uploads.ts';
import { THUMBNAIL_MAX_PX } from '../files/image-limits.ts';
import { builder } from './builder.ts';
import { NodeRef } from './node.ts';
import { MessageKindEnum } from './messages.ts';

const isUploadedFile = (value: unknown): value is UploadedFile =>
  typeof value === 'object' && value !== null && 'stream' in value && 'size' in value && 'name' in value;

// Resolvers receive the WHATWG File that Yoga parsed out of the multipart request.
const FileScalar = builder.scalarType('File', {
  description: 'A file sent with the GraphQL multipart request spec (https://github.com/jaydenseric/graphql-multipart-request-spec). Input only.',
  serialize: () => {
    throw new Error('File is an input-only scalar.');
  },
  parseValue: (value: unknown) => {
    if (!isUploadedFile(value)) throw badUserInput('file', 'Send the file as a multipart request (GraphQL multipart request spec).');
    return value;
  },
});

/** A signed link for the viewer; depends on who asks, so shared subscription results never carry one. */
function downloadUrl(ctx: Context, attachmentId: string, variant: FileVariant): string {
  return viewerFileUrl(ctx.config, ctx.origin, { attachmentId, variant, viewerId: requireViewer(ctx).userId });
}

builder.prismaObject('Attachment', {
  interfaces: [NodeRef],
  description: 'An uploaded file. Its uploader sees it from the start; members of a chat see it once it is sent there; every signed-in user while it is someone\'s profile picture.',
  fields: (t) => ({
    kind: t.expose('kind', { type: MessageKindEnum, nullable: true, description: 'What the file was uploaded as; null for a file uploaded without a kind.' }),
    name: t.exposeString('name', { description: 'The file name the uploader gave, cleaned of paths and control characters.' }),
    mimeType: t.exposeString('mimeType', { description: "Detected from the file's content, not taken from the client." }),
    size: t.exposeInt('size', { description: 'Bytes.' }),
    width: t.exposeInt('width', { nullable: true, description: 'Images: width in pixels as displayed (EXIF orientation applied).' }),
    height: t.exposeInt('height', { nullable: true, description: 'Images: height in pixels as displayed.' }),
    durationMs: t.exposeInt('durationMs', { nullable: true, description: 'Voice recordings in WAV or Ogg: length in milliseconds; null for other formats.' }),
    createdAt: t.expose('createdAt', { type: 'DateTime', description: 'When it was uploaded.' }),
    url: t.string({
      description:
        'Download link for you, valid for a few minutes (FILE_URL_TTL) without an Authorization header, e.g. in <img src>. ' +
        'Absolute, under PUBLIC_URL (else the origin the request came to): `https://<host>/files/<id>?u=…&expires=…&sig=…`. `GET /files/<id>` with a Bearer token works too.',
      extensions: { viewerDependent: true },
      resolve: (attachment, _args, ctx) => downloadUrl(ctx, attachment.id, 'original'),
    }),
    thumbnailUrl: t.string({
      nullable: true,
      description: `Images: a signed link to a WebP thumbnail of at most ${THUMBNAIL_MAX_PX} px on its longer side (like url). Null for other files.`,
      extensions: { viewerDependent: true },
      resolve: (attachment, _args, ctx) => (attachment.thumbnailKey ? downloadUrl(ctx, attachment.id, 'thumbnail') : null),
    }),
  }),
});

builder.mutationFields((t) => ({
  uploadFile: t.prismaField({
    type: 'Attachment',
    description:
      'Uploads a file to send with sendMessage (attachmentId). A multipart request (GraphQL multipart request spec), at most ' +
      'MAX_UPLOAD_BYTES (25 MiB by default). Its type is detected from the content. Unsent uploads are deleted after a day. ' +
        'RATE_LIMITED (HTTP 429, Retry-After) when the server holds too many uploads in memory to take this one within a couple of seconds.',
    args: {
      file: t.arg({ type: FileScalar, required: true, description: 'The file.' }),
      kind: t.arg({
        type: MessageKindEnum,
        required: false,
        description: 'IMAGE (JPEG, PNG, GIF, WebP or AVIF; gets a thumbnail), VOICE (Ogg/Opus, WebM, MP4/M4A, MP3, WAV or AAC) or FILE (anything). Omitted: FILE without a kind.',
      }),
      encrypted: t.arg.boolean({
        required: false,
        description:
          'The file is ciphertext you encrypted for an end-to-end encrypted chat: stored as sent (application/octet-stream, no name kept), never sniffed, thumbnailed or stripped; kind FILE or none.',
      }),
    },
    resolve: async (query, _root, args, ctx) => {
      const viewerId = requireViewer(ctx).userId;
      await ctx.rateLimits.consume('uploads', viewerId);
      await ctx.rateLimits.consume('uploadBytes', viewerId, Math.max(1, args.file.size));
      const attachment = await uploadFile(ctx, viewerId, args.file, args.kind, args.encrypted ?? false);
      return ctx.prisma.attachment.findUniqueOrThrow({ ...query, where: { id: attachment.id } });
    },
  }),
}));
