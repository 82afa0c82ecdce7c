"""Windows of a scene predicted on a Dask ``distributed`` cluster.

Each task gets the predictor (a :class:`~slidemap.inference.predictor.PredictorSpec`: the
checkpoint paths, engine kind and transform set of a single model, an ensemble and/or
test-time augmentation; built once per worker process and cached) and the scene
(:class:`~slidemap.inference.scene.SceneSpec`: file paths, opened by each task),
plus one window; it returns that window's :class:`~slidemap.inference.sliding.WindowResult`.
Workers therefore need the checkpoint and the rasters at the same paths (a shared
filesystem on a cluster). A worker holds one window's input, activations and output: its
memory is bounded by the window size, not the scene.

The client keeps at most ``2 × workers`` tasks in flight and consumes results in plan
order, so the driver's memory is bounded too and the blend is accumulated in exactly the
order of a single-process run: the output is identical.

``workers=N`` starts a ``LocalCluster`` of ``N`` single-threaded worker processes;
``scheduler="tcp://host:8786"`` uses an existing cluster (started by hand, by
``dask-jobqueue`` on a batch system or by ``dask-kubernetes``) unchanged.
"""

from __future__ import annotations

import collections
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from rasterio.windows import Window

from slidemap.errors import ConfigError, ResourceError
from slidemap.inference.engine import EngineSpec
from slidemap.inference.predictor import PredictorSource, PredictorSpec, resolve_predictor
from slidemap.inference.scene import SceneReader, SceneSpec
from slidemap.inference.sliding import WindowPlan, WindowResult, predict_window
from slidemap.io.geotiff import bounded_gdal_cache

log = logging.getLogger(__name__)

#: Tasks in flight per worker (enough to keep workers busy while the driver blends).
IN_FLIGHT_PER_WORKER = 2

def predict_window_task(source: PredictorSource, scene: SceneSpec, window: Window) -> WindowResult:
    """One Dask task: predict ``window`` of ``scene`` (see :func:`~slidemap.inference.sliding.predict_window`).

    The scene is opened per task (milliseconds against a window's model time; rasterio
    handles must not cross threads) and the predictor is cached per worker process.
    """
    predictor = resolve_predictor(source)
    with bounded_gdal_cache(), SceneReader(scene, predictor.pipeline.band_set) as reader:
        return predict_window(predictor, reader, window)


#: seconds to wait for a Dask scheduler before giving up (``--scheduler-timeout``).
DEFAULT_SCHEDULER_TIMEOUT_S = 10.0


def connect(scheduler: str, timeout_s: float = DEFAULT_SCHEDULER_TIMEOUT_S) -> Any:
    """A ``distributed.Client`` on ``scheduler``, or one :class:`ResourceError` after
    ``timeout_s`` seconds when it cannot be reached (instead of distributed's 30 s and a
    traceback)."""
    from distributed import Client

    try:
        return Client(scheduler, timeout=timeout_s)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ResourceError(f"cannot reach the Dask scheduler {scheduler} within {timeout_s:g} s "
                            f"({reason}); check the address or raise --scheduler-timeout") from None


@contextlib.contextmanager
def dask_client(workers: int = 0, scheduler: str | None = None, processes: bool = True,
                timeout_s: float = DEFAULT_SCHEDULER_TIMEOUT_S) -> Iterator[Any]:
    """A ``distributed.Client`` on ``scheduler`` (reached within ``timeout_s`` seconds), or on a
    new ``LocalCluster`` of ``workers`` single-threaded workers (processes, or threads with
    ``processes=False``)."""
    from distributed import Client, LocalCluster

    if scheduler:
        with connect(scheduler, timeout_s) as client:
            yield client
        return
    if workers < 1:
        raise ConfigError(f"a local Dask cluster needs workers >= 1, got {workers}")
    with LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=processes,
        dashboard_address=None, silence_logs=logging.WARNING,
    ) as cluster, Client(cluster) as client:
        yield client


def iter_windows_dask(
    source: PredictorSource, scene: SceneSpec, plan: WindowPlan, *, workers: int = 0,
    scheduler: str | None = None, processes: bool = True,
    scheduler_timeout_s: float = DEFAULT_SCHEDULER_TIMEOUT_S,
) -> Iterator[WindowResult]:
    """Predict every window of ``plan`` on Dask; yield results in plan order."""
    with dask_client(workers, scheduler, processes, scheduler_timeout_s) as client:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})) or workers)
        limit = IN_FLIGHT_PER_WORKER * n_workers
        # An in-memory engine or predictor is sent once to every worker, not once per task.
        if not isinstance(source, EngineSpec | PredictorSpec):
            source = client.scatter(source, broadcast=True)
        pending: collections.deque[Any] = collections.deque()
        for window in plan.windows():
            pending.append(client.submit(predict_window_task, source, scene, window, pure=False))
            if len(pending) >= limit:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

