-- CreateTable
CREATE TABLE "ChatDraft" (
    "chatId" TEXT NOT NULL,
    "userId" TEXT NOT NULL,
    "content" BYTEA NOT NULL,
    "contentKeyId" TEXT NOT NULL,
    "replyToId" TEXT,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "ChatDraft_pkey" PRIMARY KEY ("chatId","userId")
);

-- CreateIndex
CREATE INDEX "ChatDraft_userId_idx" ON "ChatDraft"("userId");

-- AddForeignKey
ALTER TABLE "ChatDraft" ADD CONSTRAINT "ChatDraft_chatId_fkey" FOREIGN KEY ("chatId") REFERENCES "Chat"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "ChatDraft" ADD CONSTRAINT "ChatDraft_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "ChatDraft" ADD CONSTRAINT "ChatDraft_replyToId_fkey" FOREIGN KEY ("replyToId") REFERENCES "Message"("id") ON DELETE SET NULL ON UPDATE CASCADE;
