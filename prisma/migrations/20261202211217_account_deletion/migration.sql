-- deleteAccount (src/users/account-deletion.ts): a deleted user's row stays (their messages and direct
-- chats read as from a deleted account) with the profile erased: email and passwordHash become null.
-- AccountDeletion holds what is left to do: a last erasure pass, and the username's release after 30
-- days. Adding a nullable column and dropping NOT NULL rewrite nothing.

-- AlterTable
ALTER TABLE "User" ADD COLUMN     "deletedAt" TIMESTAMP(3),
ALTER COLUMN "email" DROP NOT NULL,
ALTER COLUMN "passwordHash" DROP NOT NULL;

-- CreateTable
CREATE TABLE "AccountDeletion" (
    "userId" TEXT NOT NULL,
    "deletedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "erasedAt" TIMESTAMP(3),
    "usernameReleaseAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "AccountDeletion_pkey" PRIMARY KEY ("userId")
);

-- CreateIndex
CREATE INDEX "AccountDeletion_erasedAt_deletedAt_idx" ON "AccountDeletion"("erasedAt", "deletedAt");

-- CreateIndex
CREATE INDEX "AccountDeletion_usernameReleaseAt_idx" ON "AccountDeletion"("usernameReleaseAt");

-- AddForeignKey
ALTER TABLE "AccountDeletion" ADD CONSTRAINT "AccountDeletion_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE;
