"""Lambda's memory-to-vCPU share and the /tmp-only filesystem."""

from __future__ import annotations

import pytest

from runtime.environment import prepare, vcpu_share


@pytest.mark.parametrize(
    ("memory", "cores", "expected"),
    [(128, 8, 1), (1769, 8, 1), (1770, 8, 2), (3008, 8, 2), (10240, 8, 6), (10240, 2, 2)],
)
def test_threads_follow_the_vcpu_share_of_the_memory_size(memory, cores, expected):
    assert vcpu_share(memory, cores) == expected


def test_prepare_points_caches_at_tmp_and_sizes_thread_pools(tmp_path):
    environ = {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024", "HOME": "/nonexistent-home", "TMPDIR": str(tmp_path)}
    threads = prepare(environ)
    assert threads == 1
    assert environ["HOME"] == str(tmp_path)
    assert environ["TORCH_HOME"].startswith(str(tmp_path))
    assert environ["OMP_NUM_THREADS"] == environ["TF_NUM_INTRAOP_THREADS"] == "1"
    assert environ["JOBLIB_MULTIPROCESSING"] == "0"


def test_prepare_keeps_what_the_user_set(tmp_path):
    environ = {"HOME": str(tmp_path), "OMP_NUM_THREADS": "4", "SERVEML_THREADS": "3"}
    assert prepare(environ) == 3
    assert environ["OMP_NUM_THREADS"] == "4"
    assert environ["HOME"] == str(tmp_path)
