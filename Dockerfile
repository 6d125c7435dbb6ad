# AN1 Engine server images. Two targets from one file:
#
#   docker build -t an1-engine:0.1.0 .                       # `cuda` (default): GPU nodes
#   docker build --target cpu -t an1-engine:0.1.0-cpu .      # hosts without a GPU
#   docker run --gpus all --ipc=shareable --shm-size=8g --stop-timeout 45 \
#     -p 50051:50051 -p 9464:9464 -e AN1_LICENSE_KEY an1-engine:0.1.0
#
# The build stages compile on the CUDA devel image (nvcc, cuBLASLt headers; Ubuntu 24.04 carries
# gRPC, protobuf, spdlog and prometheus-cpp) or on Debian 12; the runtime stages carry the
# binaries and only the runtime libraries they link (listed by scripts/image-build.sh). an1d
# links cudart statically and loads cuBLASLt and NVML at run time: the CUDA runtime image brings
# cuBLASLt, the NVIDIA container toolkit mounts the driver and NVML (`utility` capability).
#
# Stop: an1d drains for up to --shutdown-grace-seconds (30) after SIGTERM; Docker's default stop
# timeout is 10 s, so run with --stop-timeout 45 (compose: stop_grace_period; Kubernetes:
# terminationGracePeriodSeconds). The health check reads the gRPC port from an1d's ready file,
# so it follows whatever --listen says. Build and run check: scripts/image-check.sh.
ARG CUDA_DEVEL_IMAGE=docker.io/nvidia/cuda:13.0.0-devel-ubuntu24.04
ARG CUDA_RUNTIME_IMAGE=docker.io/nvidia/cuda:13.0.0-runtime-ubuntu24.04
ARG CPU_IMAGE=docker.io/library/debian:12

FROM ${CPU_IMAGE} AS build-cpu
COPY scripts/image-build.sh /src/scripts/image-build.sh
RUN /src/scripts/image-build.sh deps
COPY . /src
RUN /src/scripts/image-build.sh build -DAN1_ENABLE_CUDA=OFF

FROM ${CUDA_DEVEL_IMAGE} AS build-cuda
COPY scripts/image-build.sh /src/scripts/image-build.sh
RUN /src/scripts/image-build.sh deps
COPY . /src
RUN /src/scripts/image-build.sh build -DAN1_ENABLE_CUDA=ON

FROM ${CPU_IMAGE} AS cpu
COPY --from=build-cpu /opt/an1 /opt/an1
RUN apt-get update -qq \
 && xargs -a /opt/an1/runtime-packages.txt \
      env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends >/dev/null \
 && rm -rf /var/lib/apt/lists/*
ENV PATH=/opt/an1/bin:$PATH
USER 10001:10001
EXPOSE 50051 9464
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
  CMD an1 --timeout 2 --server "127.0.0.1:$(sed -n 's/^grpc_port=//p' /tmp/an1d.ready)" health
STOPSIGNAL SIGTERM
ENTRYPOINT ["an1d", "--ready-file", "/tmp/an1d.ready"]
CMD ["--listen", "0.0.0.0:50051", "--metrics-listen", "0.0.0.0:9464", "--shm-socket", "/dev/shm/an1d.sock"]

FROM ${CUDA_RUNTIME_IMAGE} AS cuda
COPY --from=build-cuda /opt/an1 /opt/an1
RUN apt-get update -qq \
 && xargs -a /opt/an1/runtime-packages.txt \
      env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends >/dev/null \
 && rm -rf /var/lib/apt/lists/*
ENV PATH=/opt/an1/bin:$PATH \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER 10001:10001
EXPOSE 50051 9464
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
  CMD an1 --timeout 2 --server "127.0.0.1:$(sed -n 's/^grpc_port=//p' /tmp/an1d.ready)" health
STOPSIGNAL SIGTERM
ENTRYPOINT ["an1d", "--ready-file", "/tmp/an1d.ready"]
CMD ["--listen", "0.0.0.0:50051", "--metrics-listen", "0.0.0.0:9464", "--shm-socket", "/dev/shm/an1d.sock"]
