-- AlterTable: existing entries were indexed under the key that was current when their text was
-- written, which is the key that sealed it (send and edit seal and index under the current key).
ALTER TABLE "MessageSearch" ADD COLUMN     "keyId" TEXT;
UPDATE "MessageSearch" s SET "keyId" = m."contentKeyId" FROM "Message" m WHERE m."id" = s."messageId";
-- An entry of a message without a key (no text) cannot be right: the re-index finds and drops it.
UPDATE "MessageSearch" SET "keyId" = '' WHERE "keyId" IS NULL;
ALTER TABLE "MessageSearch" ALTER COLUMN "keyId" SET NOT NULL;

-- CreateTable
CREATE TABLE "SearchReindex" (
    "keyId" TEXT NOT NULL,
    "cursor" TEXT,
    "reindexed" INTEGER NOT NULL DEFAULT 0,
    "startedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finishedAt" TIMESTAMP(3),

    CONSTRAINT "SearchReindex_pkey" PRIMARY KEY ("keyId")
);
