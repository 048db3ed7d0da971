-- Schedules whose upload is gone already (deleted as unused before this key existed) would fail at
-- their time anyway; without the id the foreign key can be added.
UPDATE "ScheduledMessage" s SET "attachmentId" = NULL
WHERE s."attachmentId" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "Attachment" a WHERE a."id" = s."attachmentId");

-- CreateIndex
CREATE INDEX "ScheduledMessage_attachmentId_idx" ON "ScheduledMessage"("attachmentId");

-- AddForeignKey
ALTER TABLE "ScheduledMessage" ADD CONSTRAINT "ScheduledMessage_attachmentId_fkey" FOREIGN KEY ("attachmentId") REFERENCES "Attachment"("id") ON DELETE SET NULL ON UPDATE CASCADE;
