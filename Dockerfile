# AN1 Engine server image, built from Debian 12 packages with the project's own scripts.
#
#   docker build -t an1-engine:0.1.0 .
#   docker run --rm -p 50051:50051 -p 9464:9464 an1-engine:0.1.0
#
# This image builds the CPU-serving configuration (no CUDA toolkit inside the build stage), so
# an1d serves the baseline on the CPU and says so in its log and in `an1 info`.

FROM debian:12 AS build
WORKDIR /src
COPY scripts/bootstrap.sh scripts/bootstrap.sh
RUN scripts/bootstrap.sh
COPY . .
RUN rm -rf build && scripts/build.sh -DAN1_BUILD_TESTS=OFF

FROM debian:12-slim
# Only the runtime libraries of what the build linked dynamically.
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      libgrpc++1.51 libprotobuf32 libspdlog1.10 libprometheus-cpp-pull1.0 libprometheus-cpp-core1.0 \
      libssl3 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/bin/an1d /src/build/bin/an1 /usr/local/bin/
RUN useradd --system --uid 10001 an1
USER an1
EXPOSE 50051 9464
# The CLI doubles as the health probe: exit 0 only while the server reports SERVING.
HEALTHCHECK --interval=10s --timeout=3s CMD ["an1", "--timeout", "2", "health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["an1d"]
CMD ["--listen", "0.0.0.0:50051", "--metrics-listen", "0.0.0.0:9464"]
