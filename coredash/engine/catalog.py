"""The job catalogue: built-in ``tasks`` modules plus modules users load by path.

Workers never receive a function object. They receive a :class:`TaskRef` (module
name, function name, and the file path for user modules) and import the function
themselves, so a user's ``mytasks.py`` works in every mode, process modes
included, without being importable from ``sys.path``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import io
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from coredash.taskapi import TaskMeta, task_meta


class CatalogError(Exception):
    """A task or task module that cannot be used; the message is for the user."""


@dataclass(frozen=True, slots=True)
class TaskRef:
    """How a worker finds a job function (picklable, tiny)."""

    module: str
    function: str
    path: str | None = None  # set for modules loaded from a file


# Size units that are durations: seconds per unit.
_TIME_UNITS = {"s": 1.0, "ms": 0.001}


@dataclass(frozen=True, slots=True)
class TaskInfo:
    name: str
    ref: TaskRef
    func: Callable[..., Any]
    meta: TaskMeta
    prepare: Callable[..., dict[str, Any]] | None = None

    @property
    def description(self) -> str:
        return self.meta.description

    @property
    def size_param(self) -> str:
        return self.meta.size_param

    @property
    def default_size(self) -> int:
        return self.meta.default_size

    @property
    def releases_gil(self) -> bool | None:
        return self.meta.releases_gil

    @property
    def kind(self) -> str:
        return self.meta.kind

    def check_size(self, size: int) -> None:
        limit = self.meta.max_size
        if limit is not None and size > limit:
            unit = f" {self.meta.size_unit}" if self.meta.size_unit else ""
            raise CatalogError(f"{self.name}: size {size:,}{unit} is over its limit of {limit:,}{unit}")

    def expected_run_s(self, params: dict[str, Any]) -> float | None:
        """How long one job runs, where its size says so (a size in s or ms is a duration)."""
        scale = _TIME_UNITS.get(self.meta.size_unit)
        size = params.get(self.size_param)
        if scale is None or not isinstance(size, int | float) or isinstance(size, bool):
            return None
        return float(size) * scale

    def params_for(self, size: int | None = None, **extra: Any) -> dict[str, Any]:
        """User-facing parameters for one job: the size knob plus any extras."""
        params: dict[str, Any] = {self.size_param: self.default_size if size is None else size}
        params.update(extra)
        return params

    def check_params(self, params: dict[str, Any]) -> None:
        try:
            inspect.signature(self.func).bind(**params)
        except TypeError as exc:
            raise CatalogError(f"bad parameters for task {self.name!r}: {exc}") from None

    def call_kwargs(self, params: dict[str, Any]) -> dict[str, Any]:
        """The keyword arguments the worker calls the function with."""
        return self.prepare(**params) if self.prepare is not None else dict(params)


def user_module_name(path: Path) -> str:
    """A stable module name for a task file: the same in the parent and in workers."""
    resolved = str(path.resolve())
    digest = hashlib.sha1(resolved.encode()).hexdigest()[:10]
    stem = re.sub(r"\W", "_", path.stem) or "tasks"
    return f"coredash_user_{stem}_{digest}"


def import_task_file(path: str | Path) -> ModuleType:
    """Import a Python file as a module (cached in sys.modules by its stable name)."""
    file = Path(path).expanduser()
    name = user_module_name(file)
    cached = sys.modules.get(name)
    if cached is not None:
        return cached
    if file.is_dir():
        raise CatalogError(f"{file} is a folder; --tasks wants a Python file")
    if not file.is_file():
        raise CatalogError(f"task file not found: {file}")
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise CatalogError(f"cannot load {file} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        # Whatever the module prints while importing must not land on the screen.
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[name]
        raise CatalogError(f"{file}:{exc.lineno}: syntax error: {exc.msg}") from None
    except BaseException as exc:  # a user module may raise anything, even SystemExit
        del sys.modules[name]
        raise CatalogError(f"{file}: importing it raised {type(exc).__name__}: {exc}") from None
    return module


_resolved: dict[TaskRef, Callable[..., Any]] = {}


def resolve(ref: TaskRef) -> Callable[..., Any]:
    """Find the function a TaskRef names (in a worker, or in the coredash process)."""
    func = _resolved.get(ref)
    if func is None:
        if ref.path is not None:
            module = import_task_file(ref.path)
        else:
            module = importlib.import_module(ref.module)
        func = getattr(module, ref.function)
        _resolved[ref] = func
    return func


def _first_line(text: str | None) -> str:
    for line in (text or "").strip().splitlines():
        if line.strip():
            return line.strip()
    return "(no description)"


def _meta_for_plain_function(func: Callable[..., Any]) -> TaskMeta:
    """Metadata for an undecorated user function: its first parameter is the size."""
    parameters = list(inspect.signature(func).parameters.values())
    if not parameters:
        raise CatalogError(f"{func.__name__}() takes no parameters, so it has no size knob")
    first = parameters[0]
    default = first.default if isinstance(first.default, int) else 1
    return TaskMeta(
        description=_first_line(func.__doc__),
        size_param=first.name,
        default_size=int(default),
        releases_gil=None,
        kind="other",
    )


def _infos_from_module(module: ModuleType, ref_path: str | None) -> Iterator[TaskInfo]:
    defined_here = [
        obj
        for name, obj in vars(module).items()
        if inspect.isfunction(obj) and obj.__module__ == module.__name__ and not name.startswith("_")
    ]
    decorated = [func for func in defined_here if task_meta(func) is not None]
    # A module that marks any function with @task lists only those; otherwise
    # every public function defined in it that takes a size argument is a job.
    plain = [func for func in defined_here if inspect.signature(func).parameters]
    for func in decorated or plain:
        meta = task_meta(func) or _meta_for_plain_function(func)
        prepare = None
        if meta.prepare is not None:
            prepare = getattr(module, meta.prepare, None)
            if not callable(prepare):
                raise CatalogError(
                    f"{module.__name__}.{func.__name__}: prepare function {meta.prepare!r} not found"
                )
        ref = TaskRef(module=module.__name__, function=func.__name__, path=ref_path)
        yield TaskInfo(name=func.__name__, ref=ref, func=func, meta=meta, prepare=prepare)


class Catalog:
    """Task name -> TaskInfo, built-ins first, then user modules in load order."""

    def __init__(self, infos: Iterable[TaskInfo] = ()) -> None:
        self._tasks: dict[str, TaskInfo] = {}
        for info in infos:
            self._add(info, prefix=None)

    @classmethod
    def builtin(cls) -> Catalog:
        import tasks

        catalog = cls()
        for module_name in tasks.MODULES:
            for info in _infos_from_module(importlib.import_module(module_name), None):
                catalog._add(info, prefix=None)
        return catalog

    def load_file(self, path: str | Path) -> list[TaskInfo]:
        """Add the jobs defined in a Python file; returns what was added."""
        file = Path(path).expanduser()
        module = import_task_file(file)
        try:
            infos = list(_infos_from_module(module, str(file.resolve())))
        except CatalogError as exc:
            raise CatalogError(f"{file}: {exc}") from None
        if not infos:
            raise CatalogError(f"{file}: no public function with a size argument to run as a job")
        return [self._add(info, prefix=file.stem) for info in infos]

    def _add(self, info: TaskInfo, prefix: str | None) -> TaskInfo:
        name = info.name
        if name in self._tasks and prefix is not None:
            name = f"{prefix}.{name}"  # a user task may not shadow a built-in one
        if name in self._tasks:
            raise CatalogError(f"two tasks are named {name!r}")
        info = TaskInfo(name=name, ref=info.ref, func=info.func, meta=info.meta, prepare=info.prepare)
        self._tasks[name] = info
        return info

    def get(self, name: str) -> TaskInfo:
        info = self._tasks.get(name)
        if info is None:
            known = ", ".join(self._tasks)
            raise CatalogError(f"unknown task {name!r}; known tasks: {known}")
        return info

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def __iter__(self) -> Iterator[TaskInfo]:
        return iter(self._tasks.values())

    def __len__(self) -> int:
        return len(self._tasks)

    def names(self) -> list[str]:
        return list(self._tasks)
