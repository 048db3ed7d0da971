-- AlterTable
ALTER TABLE "Message" ADD COLUMN     "threadRootId" TEXT;

-- CreateTable
CREATE TABLE "ThreadFollow" (
    "rootId" TEXT NOT NULL,
    "userId" TEXT NOT NULL,
    "following" BOOLEAN NOT NULL,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "ThreadFollow_pkey" PRIMARY KEY ("rootId","userId")
);

-- CreateIndex
CREATE INDEX "ThreadFollow_userId_idx" ON "ThreadFollow"("userId");

-- CreateIndex
CREATE INDEX "Message_threadRootId_seq_idx" ON "Message"("threadRootId", "seq");

-- AddForeignKey
ALTER TABLE "Message" ADD CONSTRAINT "Message_threadRootId_fkey" FOREIGN KEY ("threadRootId") REFERENCES "Message"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "ThreadFollow" ADD CONSTRAINT "ThreadFollow_rootId_fkey" FOREIGN KEY ("rootId") REFERENCES "Message"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "ThreadFollow" ADD CONSTRAINT "ThreadFollow_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE;
