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

# Stage 2: the runtime, with only the installed wheels and the `hami` console script.
FROM python:3.11-slim
COPY --from=wheels /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels && mkdir -p /usr/local/lib/hami
USER 65532:65532
ENTRYPOINT ["hami"]
CMD ["--help"]
