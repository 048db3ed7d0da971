-- A row per send (its id is the message's, as before) or per edit that newly mentions someone (its
-- id is the edit's). Rows waiting now are sends: they keep their message id as their id.
ALTER TABLE "NotificationOutbox" ADD COLUMN "id" TEXT;
UPDATE "NotificationOutbox" SET "id" = "messageId";
ALTER TABLE "NotificationOutbox" ALTER COLUMN "id" SET NOT NULL,
DROP CONSTRAINT "NotificationOutbox_pkey",
ADD COLUMN     "mentionedUserIds" TEXT[],
ADD CONSTRAINT "NotificationOutbox_pkey" PRIMARY KEY ("id");
