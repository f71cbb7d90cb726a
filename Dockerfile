# syntax=docker/dockerfile:1
# steady: one image for every role (serve --role api|controller|all, migrate, agent --simulate, dev).
#   docker build -t steady:latest .
#   docker run --rm -p 8080:8080 -e DATABASE_URL=... -e JWT_SECRET=... steady:latest serve
ARG NODE_IMAGE=node:22-bookworm-slim

# 1. Build: every dependency (TypeScript included), compile src/ to dist/ and bundle the dashboard
#    (src/ui/app/) into dist/ui/static/, which the API serves at /.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# 2. Production dependencies only (tsx stays: `steady dev` may run from source; bin/steady.js prefers dist/).
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# 3. Runtime: no compiler, no dev dependencies, no root.
FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    STEADY_DATA_DIR=/data
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY migrations ./migrations
COPY assets ./assets
COPY --from=build /app/dist ./dist
# /data only matters for `steady dev` (embedded database); production uses DATABASE_URL.
RUN mkdir -p /data && chown 1000:1000 /data
# The image's `node` user, by number: Kubernetes' runAsNonRoot can only verify a numeric user.
USER 1000:1000
EXPOSE 8080
# Slim images have no curl; node's own fetch does the check. Roles without an HTTP server (migrate,
# agent) must turn it off (compose: `healthcheck: disable: true`); Kubernetes ignores it and uses probes.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz', { signal: AbortSignal.timeout(2500) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "/app/bin/steady.js"]
CMD ["serve"]
