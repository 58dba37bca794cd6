# The hami image: `hami scheduler`, `hami device-plugin`, `hami certs` (and `hami monitor`) with
# every backend distribution in the repository. Build from the repository root:
#   docker build -t docker.io/projecthami/hami-py:0.1.0 .

# Stage 1: wheels for the core and every backend (backends/*, plugins/*), protos compiled in.
FROM python:3.11-slim AS wheels
WORKDIR /src
RUN pip install --no-cache-dir grpcio-tools==1.85.1 hatchling==1.33.0
COPY . /src
RUN set -e; \
    for proto in hami_core/*/proto/*.proto hami_core/*/*/proto/*.proto; do \
      [ -f "$proto" ] || continue; \
      python -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. --pyi_out=. "$proto"; \
    done; \
    for dist in . backends/* plugins/*; do \
      [ -f "$dist/pyproject.toml" ] || continue; \
      pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels "$dist"; \
    done

# Stage 2: the CUDA shim libvgpu.so (native/), built against the CUDA headers that native/Makefile
# unpacks from their PyPI wheels.
FROM python:3.11-slim AS shim
# Debian's current gcc and make are what the shim is tested with; versions follow the base image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY native/ /src/native/
RUN make -C native build/libvgpu.so PYTHON=python3

# Stage 3: the runtime, with only the installed wheels, the `hami` console script and the shim
# (which the device-plugin DaemonSet's init container installs onto the host).
FROM python:3.11-slim
COPY --from=wheels /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY --from=shim /src/native/build/libvgpu.so /usr/local/lib/hami/libvgpu.so
USER 65532:65532
ENTRYPOINT ["hami"]
CMD ["--help"]
