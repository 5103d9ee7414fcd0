# The pipeline function's image: it validates uploaded models with the builder, so it carries
# every framework (CPU builds). Build from the repository root: sam build does.
ARG BASE_IMAGE=public.ecr.aws/lambda/python:3.12
FROM ${BASE_IMAGE}
COPY requirements/ /tmp/serveml/requirements/
COPY pyproject.toml README.md /tmp/serveml/
COPY runtime/ /tmp/serveml/runtime/
COPY frameworks/ /tmp/serveml/frameworks/
COPY builder/ /tmp/serveml/builder/
COPY serveml/ /tmp/serveml/serveml/
COPY controlplane/ /tmp/serveml/controlplane/
COPY Dockerfile /tmp/serveml/Dockerfile
RUN python -m pip install --no-cache-dir -r /tmp/serveml/requirements/controlplane.txt \
    && python -m pip install --no-cache-dir "/tmp/serveml[sklearn,pytorch,tensorflow,onnx]"
CMD ["controlplane.pipeline.handler"]
