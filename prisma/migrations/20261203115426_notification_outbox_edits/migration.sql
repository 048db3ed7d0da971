-- A row per send (random id: sends, of old instances too during a rolling update, insert only
-- messageId) or per edit that newly mentions someone (id: the edit's, with those users).
-- AlterTable
ALTER TABLE "NotificationOutbox" DROP CONSTRAINT "NotificationOutbox_pkey",
ADD COLUMN     "id" TEXT NOT NULL DEFAULT (gen_random_uuid())::text,
ADD COLUMN     "mentionedUserIds" TEXT[],
ADD CONSTRAINT "NotificationOutbox_pkey" PRIMARY KEY ("id");
