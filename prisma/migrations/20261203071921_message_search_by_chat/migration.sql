-- CreateIndex
CREATE INDEX "MessageSearch_chatId_messageId_idx" ON "MessageSearch"("chatId", "messageId");
