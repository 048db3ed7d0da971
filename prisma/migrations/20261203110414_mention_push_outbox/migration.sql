-- CreateTable
CREATE TABLE "MentionPushOutbox" (
    "editId" TEXT NOT NULL,
    "messageId" TEXT NOT NULL,
    "userIds" TEXT[],
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "MentionPushOutbox_pkey" PRIMARY KEY ("editId")
);

-- CreateIndex
CREATE INDEX "MentionPushOutbox_createdAt_idx" ON "MentionPushOutbox"("createdAt");
