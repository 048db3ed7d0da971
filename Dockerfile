# One image for the API (`npm start`) and the background worker (`npm run worker`).
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
COPY prisma ./prisma
# npm ci also builds the web client (web/ against schema.graphql).
COPY schema.graphql ./
COPY web ./web
# The npm workspaces (packages/client) must be there for npm ci to link them.
COPY packages ./packages
# Dev dependencies are kept: the Prisma generator runs at install and tsx runs the TypeScript sources.
RUN npm ci --include=dev && npm cache clean --force
COPY . .
# Uploads live in a volume (docker-compose.yml); a new volume takes this directory's owner.
RUN mkdir -p /var/lib/kocmoc/uploads && chown node:node /var/lib/kocmoc/uploads
USER node
EXPOSE 4000
CMD ["node", "--import", "tsx", "src/main.ts"]
