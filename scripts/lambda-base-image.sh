#!/usr/bin/env bash
# Print the name of a Lambda Python base image that the local Docker engine has, making one if
# it has to:
#
#   base=$(scripts/lambda-base-image.sh [--python 3.11] [--arch x86_64] [--standin] [--rebuild])
#
# 1. public.ecr.aws/lambda/python:VERSION, if the engine has it or can pull it within 20 s: the
#    real image is used wherever it can be had.
# 2. Otherwise serveml/lambda-python:VERSION, a stand-in with AWS's layout (a Python at /var/lang,
#    awslambdaric, the Runtime Interface Emulator, /lambda-entrypoint.sh, /var/task): reused when
#    it was built from the same recipe, else built from a Debian rootfs made with debootstrap,
#    since no image registry can be reached from our machines (PyPI and Debian can).
#
# The image name is the only thing on stdout (its last line); progress goes to stderr.
#   --standin   skip the real image, even where it could be pulled (to test the stand-in)
#   --rebuild   build the stand-in again even if one from the same recipe exists
# Environment: SERVEML_CACHE (default ~/.cache/serveml) keeps the debootstrapped rootfs tarball;
# SERVEML_DEBIAN_MIRROR (default http://deb.debian.org/debian); SERVEML_PYTHON, the Python whose
# aws-sam-cli (samcli) package provides the emulator binary (default .venv/bin/python, else python3).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RECIPE_DIR=$REPO/scripts/lambda-base
CACHE_DIR=${SERVEML_CACHE:-$HOME/.cache/serveml}
MIRROR=${SERVEML_DEBIAN_MIRROR:-http://deb.debian.org/debian}
AWSLAMBDARIC_VERSION=4.2.2
PULL_TIMEOUT_S=20
# A host-arch default: an image for another architecture would need qemu emulation to build.
case $(uname -m) in
    aarch64 | arm64) HOST_ARCH=arm64 ;;
    *) HOST_ARCH=x86_64 ;;
esac

python_version=3.11
arch=$HOST_ARCH
standin_only=0
rebuild=0
while (($#)); do
    case $1 in
        --python)
            python_version=${2:?--python needs a version, e.g. 3.11}
            shift 2
            ;;
        --arch)
            arch=${2:?--arch needs x86_64 or arm64}
            shift 2
            ;;
        --standin)
            standin_only=1
            shift
            ;;
        --rebuild)
            rebuild=1
            shift
            ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
            exit 0
            ;;
        *)
            echo "lambda-base-image: unknown argument: $1 (see --help)" >&2
            exit 2
            ;;
    esac
done

case $arch in
    x86_64 | amd64)
        arch=x86_64
        debian_arch=amd64
        platform=linux/amd64
        ;;
    arm64 | aarch64)
        arch=arm64
        debian_arch=arm64
        platform=linux/arm64
        ;;
    *)
        echo "lambda-base-image: --arch must be x86_64 or arm64, not $arch" >&2
        exit 2
        ;;
esac

REAL_IMAGE=public.ecr.aws/lambda/python:$python_version
STANDIN_IMAGE=serveml/lambda-python:$python_version

began=$SECONDS
log() {
    echo "lambda-base-image: [$((SECONDS - began)) s] $*" >&2
}
die() {
    log "ERROR: $*"
    exit 1
}

timeout 15 docker info >/dev/null 2>&1 ||
    die "no Docker engine answers; start one with scripts/docker-engine.sh start"

# -- 1. the real image ------------------------------------------------------------------------
if ((!standin_only)); then
    if timeout 15 docker image inspect "$REAL_IMAGE" >/dev/null 2>&1; then
        log "using $REAL_IMAGE, which the engine has"
        echo "$REAL_IMAGE"
        exit 0
    fi
    log "trying docker pull $REAL_IMAGE (at most $PULL_TIMEOUT_S s)"
    if timeout "$PULL_TIMEOUT_S" docker pull --platform "$platform" "$REAL_IMAGE" >&2; then
        log "pulled $REAL_IMAGE"
        echo "$REAL_IMAGE"
        exit 0
    fi
    log "cannot pull $REAL_IMAGE; using the stand-in $STANDIN_IMAGE"
fi

# -- 2. the stand-in --------------------------------------------------------------------------
# Debian's python3 is the version the stand-in gets: only bookworm's 3.11 is known to work.
case $python_version in
    3.11) suite=bookworm ;;
    *) die "no stand-in recipe for Python $python_version (bookworm's 3.11 only); pull $REAL_IMAGE instead" ;;
esac
if [[ $arch != "$HOST_ARCH" ]]; then
    die "cannot build a stand-in for $arch on this $HOST_ARCH machine (debootstrap would need qemu)"
fi

ROOTFS_IMAGE=serveml/debian-python:$suite
ROOTFS_TAR=$CACHE_DIR/debian-$suite-python.tar
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

python=${SERVEML_PYTHON:-}
if [[ -z $python ]]; then
    if [[ -x $REPO/.venv/bin/python ]]; then python=$REPO/.venv/bin/python; else python=python3; fi
fi
# The emulator ships inside the aws-sam-cli wheel (a registry package), as samcli/local/rapid/.
rapid=$("$python" -c 'import pathlib, samcli; print(pathlib.Path(samcli.__file__).parent / "local" / "rapid")') ||
    die "$python cannot import samcli (aws-sam-cli), which provides the emulator binary"
RIE=$rapid/aws-lambda-rie-$arch
[[ -f $RIE ]] || die "no emulator binary at $RIE"
[[ -f $CA_BUNDLE ]] || die "no CA bundle at $CA_BUNDLE (install ca-certificates)"

mkdir -p "$CACHE_DIR"
# One build at a time per cache (parallel test workers may all ask for the image at once).
exec 9>"$CACHE_DIR/lambda-base-image.lock"
flock 9

work=$(mktemp -d "${TMPDIR:-/tmp}/serveml-lambda-base.XXXXXX")
cleanup() {
    # debootstrap mounts /proc and /sys inside the target; a failed run can leave them mounted,
    # and rm must not walk into them.
    if [[ -d $work/rootfs ]]; then
        findmnt -rn -o TARGET | grep -F "$work/rootfs" | sort -r | while read -r mnt; do
            umount -l "$mnt" || true
        done
    fi
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT

id_of() { docker image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }
# What the stand-in is made of; an image whose label matches was built from exactly this.
recipe_of() {
    {
        echo "$1 awslambdaric==$AWSLAMBDARIC_VERSION $arch"
        cat "$RECIPE_DIR/Dockerfile" "$RECIPE_DIR/lambda-entrypoint.sh" "$CA_BUNDLE" "$RIE"
    } | sha256sum | cut -c1-16
}
reuse_if_current() {
    local rootfs_id recipe
    rootfs_id=$(id_of "$ROOTFS_IMAGE")
    [[ -n $rootfs_id ]] || return 1
    recipe=$(recipe_of "$rootfs_id")
    [[ $(docker image inspect --format '{{index .Config.Labels "org.serveml.recipe"}}' "$STANDIN_IMAGE" 2>/dev/null) == "$recipe" ]] ||
        return 1
    log "reusing $STANDIN_IMAGE (built from the same recipe $recipe)"
    echo "$STANDIN_IMAGE"
}
# The images are the cache that matters: with a current stand-in, the rootfs tarball is not needed.
if ((!rebuild)) && reuse_if_current; then
    exit 0
fi

# -- 2a. the Debian rootfs tarball (cached) --
if [[ -s $ROOTFS_TAR ]]; then
    log "reusing the debootstrapped rootfs $ROOTFS_TAR"
else
    if ! command -v debootstrap >/dev/null 2>&1; then
        log "installing debootstrap with apt-get"
        [[ $(id -u) -eq 0 ]] || die "debootstrap is missing and installing it needs root"
        DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            debootstrap debian-archive-keyring >&2
    fi
    [[ $(id -u) -eq 0 ]] || die "debootstrap needs root"
    step=$SECONDS
    log "debootstrap $suite ($debian_arch, minbase + python3) from $MIRROR: about a minute"
    debootstrap_log=$CACHE_DIR/debootstrap.log
    if ! timeout 1800 debootstrap --variant=minbase --arch="$debian_arch" \
        --include=python3,python3-venv,python3-pip,ca-certificates \
        "$suite" "$work/rootfs" "$MIRROR" >"$debootstrap_log" 2>&1; then
        tail -n 30 "$debootstrap_log" >&2
        die "debootstrap failed (full log: $debootstrap_log)"
    fi
    # The downloaded .debs and package lists are a third of the rootfs and nothing needs them:
    # images built on this one run `apt-get update` first, as on any Debian image.
    rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
    log "debootstrap done in $((SECONDS - step)) s; writing $ROOTFS_TAR"
    # Written beside and renamed, so an interrupted run never leaves a truncated cache.
    tar -C "$work/rootfs" --numeric-owner -cf "$ROOTFS_TAR.partial" .
    mv "$ROOTFS_TAR.partial" "$ROOTFS_TAR"
    rm -rf --one-file-system "$work/rootfs"
    rebuild=1 # a new rootfs: the images made from the old one are stale
fi

# What the tags point at now, to remove once replaced (a rebuild would otherwise leave them behind).
old_ids=("$(id_of "$STANDIN_IMAGE")" "$(id_of "$ROOTFS_IMAGE")")

# -- 2b. docker import --
if ((rebuild)) || ! timeout 15 docker image inspect "$ROOTFS_IMAGE" >/dev/null 2>&1; then
    step=$SECONDS
    log "docker import $ROOTFS_TAR as $ROOTFS_IMAGE"
    # An imported image has no config at all; PATH is the one thing RUN steps rely on.
    timeout 600 docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["/bin/bash"]' \
        "$ROOTFS_TAR" "$ROOTFS_IMAGE" >/dev/null
    log "imported in $((SECONDS - step)) s"
else
    log "reusing $ROOTFS_IMAGE"
fi

# -- 2c. the Lambda layout on top --
if ((!rebuild)) && reuse_if_current; then
    exit 0
fi
recipe=$(recipe_of "$(id_of "$ROOTFS_IMAGE")")

step=$SECONDS
context=$work/context
mkdir -p "$context"
cp "$RECIPE_DIR/Dockerfile" "$RECIPE_DIR/lambda-entrypoint.sh" "$context/"
cp "$RIE" "$context/aws-lambda-rie"
cp "$CA_BUNDLE" "$context/ca-certificates.crt"
log "docker build $STANDIN_IMAGE (recipe $recipe, emulator from $RIE)"
# The classic builder, whichever docker CLI is installed: it takes --network host for RUN (pip
# reaches PyPI over the host's network) without BuildKit's network.host entitlement.
if ! DOCKER_BUILDKIT=0 timeout 900 docker build --network host \
    --build-arg "BASE=$ROOTFS_IMAGE" \
    --build-arg "AWSLAMBDARIC_VERSION=$AWSLAMBDARIC_VERSION" \
    --label "org.serveml.recipe=$recipe" \
    --label "org.serveml.stands-in-for=$REAL_IMAGE" \
    --tag "$STANDIN_IMAGE" "$context" >&2; then
    die "docker build of $STANDIN_IMAGE failed"
fi
for old in "${old_ids[@]}"; do
    # Only if nothing else uses it: images that somebody built on it keep it alive, and stay valid.
    if [[ -n $old && $old != "$(id_of "$STANDIN_IMAGE")" && $old != "$(id_of "$ROOTFS_IMAGE")" ]]; then
        if docker image rm "$old" >/dev/null 2>&1; then
            log "removed the replaced image ${old#sha256:}"
        fi
    fi
done
size=$(docker image inspect --format '{{.Size}}' "$STANDIN_IMAGE")
log "built $STANDIN_IMAGE in $((SECONDS - step)) s ($((size / 1000000)) MB)"
echo "$STANDIN_IMAGE"
