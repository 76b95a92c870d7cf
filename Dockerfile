# The bridge as Fly.io (or any container host) runs it. Node 24 runs the TypeScript sources
# directly (type stripping), so the image holds sources, migrations, the built web pages and
# production dependencies only.

# Production dependencies, exactly as the lock file pins them. Install scripts stay off, as
# package.json's allowScripts has them locally: secp256k1 then uses its pure-JS fallback.
FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# The account page and web wallet bundles (esbuild is a dev dependency): web/dist/.
FROM node:24-slim AS web
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY src ./src
COPY web ./web
RUN node web/build.ts

FROM node:24-slim
# V8 flags of the service, the same as `npm start` runs it with (package.json; docs/deploy.md).
ENV NODE_OPTIONS="--max-semi-space-size=32" \
    NODE_ENV=production \
    HTTP_HOST=0.0.0.0 \
    HTTP_PORT=8080 \
    DATA_DIR=/tmp/deposit-bridge
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY src ./src
COPY migrations ./migrations
COPY web/account.html web/wallet.html web/style.css ./web/
COPY --from=web /app/web/dist ./web/dist
# Not root. DATA_DIR holds nothing in production (PostgreSQL holds the state, the master key
# is a secret); it only has to be writable.
USER node
EXPOSE 8080
# No ENTRYPOINT: fly.toml's release command and processes are whole commands.
CMD ["node", "bin/deposit-bridge.js", "start"]
