-- Profile pictures are uploads now (User.avatarAttachmentId, an IMAGE attachment of the user's, served
-- by this server); avatarUrl is derived from it. The old avatarUrl values were URLs of anyone's choosing
-- (a tracking pixel on every client that showed them, or an internal address): they are dropped, not
-- fetched or kept, and those users have no picture until they upload one.

-- AlterTable
ALTER TABLE "User" DROP COLUMN "avatarUrl",
ADD COLUMN     "avatarAttachmentId" TEXT;

-- CreateIndex
CREATE UNIQUE INDEX "User_avatarAttachmentId_key" ON "User"("avatarAttachmentId");

-- AddForeignKey
ALTER TABLE "User" ADD CONSTRAINT "User_avatarAttachmentId_fkey" FOREIGN KEY ("avatarAttachmentId") REFERENCES "Attachment"("id") ON DELETE SET NULL ON UPDATE CASCADE;
