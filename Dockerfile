# The image of one served model. `serveml build` writes a build context around this file:
# requirements.txt, wheelhouse/ (every wheel, so the build needs no network), runtime/,
# frameworks/ (only the adapter in use) and model/ (the model and its serveml.json).
ARG PYTHON_VERSION=3.11
ARG BASE_IMAGE=public.ecr.aws/lambda/python:${PYTHON_VERSION}

# Dependencies are installed in a stage of their own: the wheels never reach the final image,
# and this layer is reused for as long as requirements.txt and the wheels stay the same.
FROM ${BASE_IMAGE} AS dependencies
COPY requirements.txt /tmp/serveml/requirements.txt
COPY wheelhouse/ /tmp/serveml/wheelhouse/
RUN python -m pip install --no-cache-dir --no-index --find-links /tmp/serveml/wheelhouse \
        --target /opt/serveml/packages -r /tmp/serveml/requirements.txt \
    && chmod -R a+rX /opt/serveml/packages

FROM ${BASE_IMAGE}
ARG FRAMEWORK=sklearn
LABEL io.serveml.framework=${FRAMEWORK}
COPY --from=dependencies /opt/serveml/packages/ ${LAMBDA_TASK_ROOT}/
# The code changes more often than the dependencies, the model more often than the code.
COPY runtime/ ${LAMBDA_TASK_ROOT}/runtime/
COPY frameworks/ ${LAMBDA_TASK_ROOT}/frameworks/
# Lambda's file system is read-only, so Python cannot cache the bytecode it compiles: without this,
# every cold start compiles ServeML's own modules again (about 25 ms). The packages pip installed
# are compiled already. unchecked-hash: the image never changes, so no source is read to check it.
RUN python -m compileall -q --invalidation-mode unchecked-hash \
        ${LAMBDA_TASK_ROOT}/runtime ${LAMBDA_TASK_ROOT}/frameworks
COPY model/ ${LAMBDA_TASK_ROOT}/model/
ENV SERVEML_MODEL_PATH=${LAMBDA_TASK_ROOT}/model
CMD ["runtime.handler.handler"]
