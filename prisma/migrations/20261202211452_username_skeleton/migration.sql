-- AlterTable
ALTER TABLE "User" ADD COLUMN     "usernameSkeleton" TEXT;

-- Backfill. Usernames so far are [a-z0-9_], where the skeleton (src/users/profile.ts,
-- usernameSkeleton) maps only m -> rn, 0 -> o and 1 -> l. Of users whose usernames already look
-- alike, the oldest holds the skeleton; the others keep their names without one (grandfathered),
-- so the unique index builds and no new look-alike of any of them can register.
UPDATE "User" u SET "usernameSkeleton" = s."skeleton"
FROM (
  SELECT "id", "skeleton", row_number() OVER (PARTITION BY "skeleton" ORDER BY "createdAt", "id") AS "rank"
  FROM (SELECT "id", "createdAt", replace(translate("username", '01', 'ol'), 'm', 'rn') AS "skeleton" FROM "User") AS mapped
) AS s
WHERE u."id" = s."id" AND s."rank" = 1;

-- CreateIndex
CREATE UNIQUE INDEX "User_usernameSkeleton_key" ON "User"("usernameSkeleton");
