#!/bin/sh
# Stand-in for /lambda-entrypoint.sh of public.ecr.aws/lambda/python, for images built on
# serveml/lambda-python (scripts/lambda-base-image.sh). It takes the handler as its argument(s),
# like AWS's:
#   - AWS_LAMBDA_RUNTIME_API unset (a local `docker run`): the Runtime Interface Emulator runs
#     awslambdaric and serves invocations over HTTP;
#   - AWS_LAMBDA_RUNTIME_API set (on Lambda, or behind an emulator outside the container):
#     awslambdaric talks to that Runtime API directly.
# Two optional variables, which AWS's entrypoint does not know, place the emulator when the
# container runs with --network host (where there is no -p mapping and every container shares
# the host's ports):
#   AWS_LAMBDA_RIE_ADDRESS              where invocations are accepted (default 0.0.0.0:8080)
#   AWS_LAMBDA_RIE_RUNTIME_API_ADDRESS  the emulator's Runtime API for awslambdaric
#                                       (default 127.0.0.1:9001)
if [ $# -lt 1 ]; then
    echo "entrypoint requires the handler name to be the first argument" 1>&2
    exit 142
fi
export _HANDLER="$1"

# python -m puts the working directory on sys.path; PYTHONPATH keeps /var/task there even when
# the container runs with another --workdir.
export PYTHONPATH="${PYTHONPATH:-/var/task}"

if [ -z "${AWS_LAMBDA_RUNTIME_API}" ]; then
    exec /usr/local/bin/aws-lambda-rie \
        --runtime-interface-emulator-address "${AWS_LAMBDA_RIE_ADDRESS:-0.0.0.0:8080}" \
        --runtime-api-address "${AWS_LAMBDA_RIE_RUNTIME_API_ADDRESS:-127.0.0.1:9001}" \
        /var/lang/bin/python -m awslambdaric "$@"
else
    exec /var/lang/bin/python -m awslambdaric "$@"
fi
