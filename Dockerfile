# One image for the API (`npm start`) and the background worker (`npm run worker`).
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
COPY prisma ./prisma
# Dev dependencies are kept: the Prisma generator runs at install and tsx runs the TypeScript sources.
RUN npm ci --include=dev && npm cache clean --force
COPY . .
USER node
EXPOSE 4000
CMD ["node", "--import", "tsx", "src/main.ts"]
