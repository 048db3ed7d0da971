-- AlterTable
ALTER TABLE "Chat" ADD COLUMN     "membersVersion" INTEGER NOT NULL DEFAULT 0;
