-- Refresh tokens now name their session and generation (src/auth/sessions.ts): the session row
-- holds the current generation and a refresh moves it on, instead of inserting a RefreshToken row.
-- A constant default adds the column without rewriting the table. Sessions opened before keep
-- their "RefreshToken" rows: their live token is accepted once, then replaced by a generation token.

-- AlterTable
ALTER TABLE "Session" ADD COLUMN     "generation" INTEGER NOT NULL DEFAULT 1;
