-- CreateEnum
CREATE TYPE "CallMedia" AS ENUM ('AUDIO', 'VIDEO');

-- CreateEnum
CREATE TYPE "CallState" AS ENUM ('RINGING', 'ACTIVE', 'ENDED');

-- CreateEnum
CREATE TYPE "CallEndReason" AS ENUM ('HANGUP', 'DECLINED', 'MISSED', 'BUSY', 'FAILED', 'ANSWERED_ELSEWHERE');

-- CreateEnum
CREATE TYPE "CallRing" AS ENUM ('RINGING', 'ANSWERED', 'DECLINED', 'MISSED', 'SILENCED');

-- AlterEnum
ALTER TYPE "MessageKind" ADD VALUE 'CALL';

-- CreateTable
CREATE TABLE "Call" (
    "id" TEXT NOT NULL,
    "chatId" TEXT NOT NULL,
    "initiatorId" TEXT NOT NULL,
    "initiatorSessionId" TEXT NOT NULL,
    "media" "CallMedia" NOT NULL,
    "state" "CallState" NOT NULL DEFAULT 'RINGING',
    "ongoingChatId" TEXT,
    "clientCallId" TEXT,
    "startedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "ringUntil" TIMESTAMP(3) NOT NULL,
    "answeredAt" TIMESTAMP(3),
    "endedAt" TIMESTAMP(3),
    "endReason" "CallEndReason",
    "messageId" TEXT,

    CONSTRAINT "Call_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "CallMember" (
    "callId" TEXT NOT NULL,
    "userId" TEXT NOT NULL,
    "ring" "CallRing" NOT NULL,
    "sessionId" TEXT,

    CONSTRAINT "CallMember_pkey" PRIMARY KEY ("callId","userId")
);

-- CreateTable
CREATE TABLE "CallParticipant" (
    "id" TEXT NOT NULL,
    "callId" TEXT NOT NULL,
    "userId" TEXT NOT NULL,
    "sessionId" TEXT NOT NULL,
    "joinedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "leftAt" TIMESTAMP(3),
    "disconnectedAt" TIMESTAMP(3),
    "streamId" TEXT,

    CONSTRAINT "CallParticipant_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "Call_ongoingChatId_key" ON "Call"("ongoingChatId");

-- CreateIndex
CREATE UNIQUE INDEX "Call_messageId_key" ON "Call"("messageId");

-- CreateIndex
CREATE INDEX "Call_chatId_startedAt_idx" ON "Call"("chatId", "startedAt");

-- CreateIndex
CREATE INDEX "Call_state_ringUntil_idx" ON "Call"("state", "ringUntil");

-- CreateIndex
CREATE UNIQUE INDEX "Call_initiatorId_clientCallId_key" ON "Call"("initiatorId", "clientCallId");

-- CreateIndex
CREATE INDEX "CallMember_userId_idx" ON "CallMember"("userId");

-- CreateIndex
CREATE INDEX "CallParticipant_callId_idx" ON "CallParticipant"("callId");

-- CreateIndex
CREATE INDEX "CallParticipant_sessionId_idx" ON "CallParticipant"("sessionId");

-- CreateIndex
CREATE INDEX "CallParticipant_userId_idx" ON "CallParticipant"("userId");

-- CreateIndex
CREATE INDEX "CallParticipant_disconnectedAt_idx" ON "CallParticipant"("disconnectedAt");

-- AddForeignKey
ALTER TABLE "Call" ADD CONSTRAINT "Call_chatId_fkey" FOREIGN KEY ("chatId") REFERENCES "Chat"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Call" ADD CONSTRAINT "Call_initiatorId_fkey" FOREIGN KEY ("initiatorId") REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Call" ADD CONSTRAINT "Call_messageId_fkey" FOREIGN KEY ("messageId") REFERENCES "Message"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "CallMember" ADD CONSTRAINT "CallMember_callId_fkey" FOREIGN KEY ("callId") REFERENCES "Call"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "CallMember" ADD CONSTRAINT "CallMember_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "CallParticipant" ADD CONSTRAINT "CallParticipant_callId_fkey" FOREIGN KEY ("callId") REFERENCES "Call"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "CallParticipant" ADD CONSTRAINT "CallParticipant_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE;
