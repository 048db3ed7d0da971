-- CreateTable
CREATE TABLE "MessageSearch" (
    "messageId" TEXT NOT NULL,
    "chatId" TEXT NOT NULL,
    "tokens" BYTEA[],

    CONSTRAINT "MessageSearch_pkey" PRIMARY KEY ("messageId")
);

-- CreateIndex
CREATE INDEX "MessageSearch_tokens_idx" ON "MessageSearch" USING GIN ("tokens" array_ops);

-- AddForeignKey
ALTER TABLE "MessageSearch" ADD CONSTRAINT "MessageSearch_messageId_fkey" FOREIGN KEY ("messageId") REFERENCES "Message"("id") ON DELETE CASCADE ON UPDATE CASCADE;
