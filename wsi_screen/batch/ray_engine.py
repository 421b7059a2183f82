"""The Ray engine: a pool of screening actors, one Ray task per input, on local Ray or a cluster.

Each actor builds its screener once (model loaded once per worker) and screens one input per call
into the same OUT/<stem>/ files the local engine writes; the driver alone appends to the ledger.
On a cluster every node must see the input and output paths (a shared file system) and have
wsi-screen installed; see docs/batch.md.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from contextlib import ExitStack
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from wsi_screen.batch.discover import BatchInput
from wsi_screen.errors import WsiScreenError
from wsi_screen.io import clean_temp_files
from wsi_screen.runner import InputOutcome
from wsi_screen.types import Failure

log = logging.getLogger(__name__)

DEFAULT_CPU_WORKERS = 2


class ScreenWorker:
    """A Ray actor holding one screener (wrapped with ``ray.remote`` when the engine starts).

    Args:
        screener_kwargs: keyword arguments of :func:`wsi_screen.runner.build_screener`.
    """

    def __init__(self, screener_kwargs: dict[str, Any], threads: int | None = None) -> None:
        from wsi_screen.runner import build_screener

        self.screener, self.info = build_screener(**screener_kwargs)
        if threads and not self.screener.cfg.classify.threads:
            # the CPUs Ray reserved for this actor, not every core of the node: actors share it
            import cv2

            from wsi_screen.device import set_threads

            set_threads(threads)
            cv2.setNumThreads(threads)
        self.threads = threads

    def describe(self) -> dict[str, Any]:
        """Device, detector and process of this worker (for run_metadata.json)."""
        import socket

        return {
            "device": str(getattr(self.screener.classifier, "device", "unknown")),
            "detector": self.info["detector"],
            "host": socket.gethostname(),
            "threads": self.threads,
            "pid": os.getpid(),
        }

    def screen(self, path: str, stem: str, out: str, run_key: str | None = None) -> dict[str, Any]:
        """Screen one input into ``out/<stem>/``; return its failure, report and seconds.

        ``run_key`` (the batch's) is written into the input's report.json as ``batch.run_key``.
        """
        from wsi_screen.runner import screen_to_folder

        keys = None if run_key is None else [run_key]
        outcome = next(
            iter(
                screen_to_folder(
                    self.screener, self.info, [Path(path)], Path(out), stems=[stem], run_keys=keys
                )
            )
        )
        return {
            "failure": asdict(outcome.failure) if outcome.failure else None,
            "report": outcome.report,
            "seconds": outcome.seconds,
        }


@contextmanager
def ray_session(*, address: str | None, num_cpus: int) -> Iterator[Any]:
    """Start a quiet local Ray (loopback only, no dashboard) or connect to ``address``.

    A local Ray binds every server (GCS, raylet, object manager, workers, runtime-env agent) to
    127.0.0.1: Ray resolves a given ``127.0.0.1`` to the machine's network address unless its
    cluster mode is off (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, read by Ray on import and by
    its child processes). Its session folders go to a private ``mkdtemp`` folder (mode 0700),
    removed afterwards. A cluster ``address`` is used exactly as given.

    Raises:
        WsiScreenError: Ray cannot start or the cluster cannot be reached.
    """
    # Set here, not at import: no usage reports and no dashboard from a lab's screening node.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DISABLE_DOCKER_CPU_WARNING", "1")
    try:
        import ray
    except ImportError as e:
        from wsi_screen.errors import MissingDependencyError

        msg = "--engine ray needs Ray: pip install 'ray[default]'"
        raise MissingDependencyError(msg) from e
    started = not ray.is_initialized()
    cleanup = ExitStack()
    if started:
        common: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
        try:
            if address:
                ray.init(address=address, **common)
            else:
                private = tempfile.mkdtemp(prefix="wsi_screen_ray_")
                cleanup.callback(shutil.rmtree, private, ignore_errors=True)
                _loopback_only(ray, cleanup)
                ray.init(
                    num_cpus=num_cpus,
                    include_dashboard=False,
                    _node_ip_address="127.0.0.1",
                    _temp_dir=str(Path(private) / "r"),  # Ray opens its own folder to all: ours stays 0700
                    **common,
                )
        except Exception as e:  # Ray raises ConnectionError, RuntimeError, ValueError...
            where = f"the Ray cluster at {address}" if address else "a local Ray"
            msg = f"cannot start {where}: {type(e).__name__}: {e}"
            cleanup.close()
            raise WsiScreenError(msg) from e
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()
        cleanup.close()


def _loopback_only(ray: Any, cleanup: ExitStack) -> None:
    """Make this process and Ray's children keep a local node on 127.0.0.1 (undone on close)."""
    from ray._private import ray_constants

    key = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
    before_env, before_flag = os.environ.get(key), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[key] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False

    def restore() -> None:
        ray_constants.ENABLE_RAY_CLUSTER = before_flag
        if before_env is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before_env

    cleanup.callback(restore)


def plan_workers(ray: Any, *, device: str, workers: int | None) -> tuple[int, bool]:
    """Decide the number of actors and whether each gets a GPU (one GPU per actor).

    Raises:
        WsiScreenError: CUDA was asked for but the Ray cluster has no GPU.
    """
    res = ray.cluster_resources()
    gpus = int(res.get("GPU", 0))
    cpus = max(int(res.get("CPU", 1)), 1)
    device = (device or "auto").lower()
    use_gpu = device.startswith("cuda") or (device == "auto" and gpus > 0)
    if use_gpu and gpus == 0:
        msg = f"--device {device}: the Ray cluster has no GPU; use --device cpu or add GPU nodes"
        raise WsiScreenError(msg)
    # more actors than GPUs (or CPUs) would wait forever for resources
    limit = min(gpus, cpus) if use_gpu else cpus
    wanted = workers or (gpus if use_gpu else DEFAULT_CPU_WORKERS)
    if wanted > limit:
        log.warning("--workers %d: the Ray cluster fits %d worker(s); using %d", wanted, limit, limit)
    return max(min(wanted, limit), 1), use_gpu


def cpus_per_worker(node_cpus: Sequence[float], workers: int) -> int:
    """The most CPUs each of ``workers`` actors can reserve so that all of them fit on the nodes.

    Example:
        >>> cpus_per_worker([16], 2), cpus_per_worker([8, 8], 3), cpus_per_worker([2], 4)
        (8, 4, 1)
    """
    per = max(1, int(sum(node_cpus)) // max(workers, 1))
    while per > 1 and sum(int(c) // per for c in node_cpus) < workers:
        per -= 1
    return per


def _local_gpu_count(device: str) -> int:
    if device.lower() == "cpu":
        return 0
    import torch

    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def screen_ray(
    todo: Sequence[BatchInput],
    out: Path,
    *,
    screener_kwargs: dict[str, Any],
    on_cells: Callable[[int], None],
    stop: Callable[[], bool],
    engine_info: dict[str, Any],
    address: str | None = None,
    workers: int | None = None,
    run_keys: Sequence[str] | None = None,
) -> Iterator[tuple[int, InputOutcome]]:
    """Screen ``todo`` on Ray actors, yielding ``(index into todo, outcome)`` as inputs finish.

    An input whose worker process dies (out of memory, a crash in a native reader) fails with
    stage ``worker``; the worker is replaced and the batch goes on. ``run_keys`` (one per input)
    are written into the inputs' report.json files (``batch.run_key``).

    Raises:
        WsiScreenError: Ray or the workers cannot start (config, model, CUDA).
    """
    if not todo:
        return
    config = screener_kwargs.get("config")
    device = config.classify.device if config is not None else (screener_kwargs.get("device") or "auto")
    from wsi_screen.device import default_threads

    # a local Ray gets this machine's cores (at least one per worker asked for)
    local_cpus = max(
        workers or DEFAULT_CPU_WORKERS, default_threads(), 0 if address else _local_gpu_count(device)
    )
    with ray_session(address=address, num_cpus=local_cpus) as ray:
        n, use_gpu = plan_workers(ray, device=device, workers=workers)
        node_cpus = [float(nd.get("Resources", {}).get("CPU", 0)) for nd in ray.nodes() if nd.get("Alive")]
        per = cpus_per_worker(node_cpus or [1.0], n)
        kwargs = {**screener_kwargs, "device": "cuda" if use_gpu else "cpu"}
        actor_cls = ray.remote(ScreenWorker).options(num_cpus=per, num_gpus=1 if use_gpu else 0)

        def start() -> Any:
            return actor_cls.remote(kwargs, per)

        actors = [start() for _ in range(min(n, len(todo)))]
        try:
            described = ray.get([a.describe.remote() for a in actors])
        except Exception as e:  # the actor constructor's error, wrapped by Ray
            msg = f"Ray workers could not start: {_cause(e)}"
            raise WsiScreenError(msg) from e
        engine_info.update(
            workers=len(actors),
            gpu_per_worker=use_gpu,
            threads_per_worker=per,
            devices=sorted({d["device"] for d in described}),
            hosts=sorted({d["host"] for d in described}),
            detector=described[0]["detector"],
            ray_address=address or "local",
        )
        log.info("Ray: %d worker(s) on %s", len(actors), ", ".join(engine_info["devices"]))
        yield from _schedule(ray, todo, out, actors, start, on_cells=on_cells, stop=stop, run_keys=run_keys)


def _schedule(
    ray: Any,
    todo: Sequence[BatchInput],
    out: Path,
    actors: list[Any],
    start: Callable[[], Any],
    *,
    on_cells: Callable[[int], None],
    stop: Callable[[], bool],
    run_keys: Sequence[str] | None = None,
) -> Iterator[tuple[int, InputOutcome]]:
    """Keep every actor busy with one input; after ``stop()`` drain the inputs in flight."""
    from ray.exceptions import RayActorError

    idle = list(actors)
    pending: dict[Any, tuple[int, Any]] = {}
    next_i = 0
    while True:
        while idle and next_i < len(todo) and not stop():
            actor = idle.pop()
            item = todo[next_i]
            key = run_keys[next_i] if run_keys is not None else None
            pending[actor.screen.remote(str(item.path), item.stem, str(out), key)] = (next_i, actor)
            next_i += 1
        if not pending:
            return
        ready, _ = ray.wait(list(pending), num_returns=1)
        i, actor = pending.pop(ready[0])
        item = todo[i]
        try:
            result = ray.get(ready[0])
            failure = Failure(**result["failure"]) if result["failure"] else None
            outcome = InputOutcome(item.path, out / item.stem, failure, result["report"], result["seconds"])
        except RayActorError as e:
            log.exception("%s: the Ray worker died while screening it; starting a new worker", item.name)
            ray.kill(actor)
            actor = start()
            clean_temp_files(out / item.stem, depth=1)
            failure = Failure(
                str(item.path), "worker", type(e).__name__, f"{item.path}: worker died: {_cause(e)}"
            )
            outcome = InputOutcome(item.path, out / item.stem, failure, None, 0.0)
        except Exception as e:  # an error that escaped the pipeline's own per-input isolation
            log.exception("%s: unexpected error in the Ray worker", item.name)
            failure = Failure(str(item.path), "worker", type(e).__name__, f"{item.path}: {_cause(e)}")
            outcome = InputOutcome(item.path, out / item.stem, failure, None, 0.0)
        idle.append(actor)
        if outcome.report:
            on_cells(int(outcome.report.get("cells_detected") or 0))
        yield i, outcome


def _cause(e: BaseException) -> str:
    """The innermost message of a Ray-wrapped exception, on one line."""
    cause = getattr(e, "cause", None) or e.__cause__ or e
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1] if text else ''}"
