-- CreateEnum
CREATE TYPE "ScheduledMessageState" AS ENUM ('PENDING', 'SENDING', 'SENT', 'FAILED', 'CANCELLED');

-- CreateTable
CREATE TABLE "ScheduledMessage" (
    "id" TEXT NOT NULL,
    "senderId" TEXT NOT NULL,
    "chatId" TEXT NOT NULL,
    "sendAt" TIMESTAMP(3) NOT NULL,
    "kind" "MessageKind" NOT NULL,
    "content" BYTEA NOT NULL,
    "contentKeyId" TEXT NOT NULL,
    "attachmentId" TEXT,
    "replyToId" TEXT,
    "threadRootId" TEXT,
    "state" "ScheduledMessageState" NOT NULL DEFAULT 'PENDING',
    "messageId" TEXT,
    "failureReason" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "ScheduledMessage_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "ScheduledMessage_messageId_key" ON "ScheduledMessage"("messageId");

-- CreateIndex
CREATE INDEX "ScheduledMessage_senderId_sendAt_id_idx" ON "ScheduledMessage"("senderId", "sendAt", "id");

-- CreateIndex
CREATE INDEX "ScheduledMessage_state_sendAt_idx" ON "ScheduledMessage"("state", "sendAt");

-- AddForeignKey
ALTER TABLE "ScheduledMessage" ADD CONSTRAINT "ScheduledMessage_senderId_fkey" FOREIGN KEY ("senderId") REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "ScheduledMessage" ADD CONSTRAINT "ScheduledMessage_chatId_fkey" FOREIGN KEY ("chatId") REFERENCES "Chat"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "ScheduledMessage" ADD CONSTRAINT "ScheduledMessage_messageId_fkey" FOREIGN KEY ("messageId") REFERENCES "Message"("id") ON DELETE SET NULL ON UPDATE CASCADE;
