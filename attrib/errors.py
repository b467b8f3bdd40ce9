"""The one error family attrib raises for bad input, with the exit codes the CLI maps them to."""

from __future__ import annotations

from collections.abc import Iterable
from numbers import Integral
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_FAILURE = 1  # an output that could not be written (a folder, no permission), or an internal error
EXIT_USAGE = 2  # bad flags (typer/click's own code)
EXIT_BAD_INPUT = 3  # a file or trace could not be read
EXIT_NOT_FOUND = 4  # a trace id, model or store that does not exist
EXIT_NO_VERDICT = 5  # a method ran but could not produce a verdict


class AttribError(Exception):
    """Base class: every error attrib raises on purpose. ``exit_code`` is what the CLI returns."""

    exit_code = EXIT_FAILURE


class InputError(AttribError):
    """Bad input: one line naming the file, the field/position and what was expected."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, path: str | Path | None, field: str | None, message: str) -> None:
        self.path = str(path) if path is not None else None
        self.field = field
        self.message = message
        super().__init__(self.one_line())

    def __reduce__(self) -> tuple[Any, ...]:
        # rebuilt from its three parts (Exception pickles ``args``, the one line): errors cross Dask and
        # process boundaries
        return (type(self), (self.path, self.field, self.message), self.__dict__)

    def one_line(self) -> str:
        parts = [p for p in (self.path, self.field) if p]
        where = ": ".join(parts)
        return f"{where}: {self.message}" if where else self.message


class UsageError(InputError):
    """A bad argument value (exit 2, as a bad flag). ``field`` is the argument's library name (``where``,
    ``top_k``; ``pairs/suite`` for two that conflict); the CLI shows it as the flag (``--where``, ``--top-k``,
    ``--pairs/--suite``), so library callers never see CLI spellings."""

    exit_code = EXIT_USAGE

    def as_flag(self) -> str:
        """The one-line message with the field spelled as a command-line flag."""
        flag = self.field and "/".join(f if f.startswith("-") else "--" + f.replace("_", "-")
                                       for f in self.field.split("/"))
        return InputError(self.path, flag, self.message).one_line()


class NotATraceError(UsageError, TypeError):
    """Something other than an :class:`attrib.Trace` where a trace belongs (a path, a dict): a :class:`UsageError`
    naming the argument, and a ``TypeError``."""


def not_a_trace(value: object, field: str = "trace") -> NotATraceError:
    """The error for ``value`` given where a Trace belongs; a path or text is pointed to ``attrib.load_trace``."""
    hint = " (read a file with attrib.load_trace(path) first)" if isinstance(value, str | bytes) or hasattr(
        value, "__fspath__") else ""
    return NotATraceError(None, field, f"expected an attrib.Trace, got {type(value).__name__}{hint}")


def is_whole_number(value: object, minimum: int = 1, maximum: int | None = None) -> bool:
    """True for an integer (not a bool) in ``minimum..maximum`` (no upper bound when ``maximum`` is None)."""
    if not isinstance(value, Integral) or isinstance(value, bool):
        return False
    v = int(value)
    return v >= minimum and (maximum is None or v <= maximum)


def is_real(value: object) -> bool:
    """True for a finite real number that is not a bool (numpy floats included): the one check of a numeric
    argument (a share, a temperature, a penalty), so NaN, inf and True are refused alike."""
    import math
    from numbers import Real

    try:
        return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    except OverflowError:  # an int too large for a float (10**400)
        return False


def whole_number(field: str, value: object, minimum: int = 1, maximum: int | None = None, *,
                 error: type[UsageError] = UsageError) -> int:
    """``value`` as an int when it is a whole number in ``minimum..maximum``, else ``error`` (a :class:`UsageError`)
    naming ``field``: the one check of a count argument (``top_k``, ``batch_size``, ``steps``...)."""
    if not is_whole_number(value, minimum, maximum):
        bound = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise error(None, field, f"must be a whole number {bound}, got {value!r}")
    return int(value)  # type: ignore[call-overload]


def layer_indices(layers: object, n_layers: int, field: str = "layers") -> list[int]:
    """Sorted unique layer indices, each a whole number in ``[0, n_layers)``, else a :class:`UsageError` naming
    ``field``: the one check of a layer list (recorder, long-context statistics, LoRA targets). Refused: a bare int
    or a string (one layer per character), a float or bool (``int()`` truncated 2.7 to 2 and read True as 1), an
    empty list, an index out of range."""
    if isinstance(layers, str | bytes) or not isinstance(layers, Iterable):
        raise UsageError(None, field, f"expected a list of layer indices, got {type(layers).__name__} {layers!r}")
    items = list(layers)
    odd = [x for x in items if not is_whole_number(x, minimum=-(2**62))]
    if odd:
        raise UsageError(None, field, f"layer indices must be whole numbers, got {odd}")
    out = sorted({int(x) for x in items})
    if not out:
        raise UsageError(None, field, f"no layers given: name at least one of 0..{n_layers - 1}")
    bad = [x for x in out if not 0 <= x < n_layers]
    if bad:
        raise UsageError(None, field, f"layers {bad} out of range: the model has {n_layers} layers "
                         f"(0..{n_layers - 1})")
    return out


def layers_or_all(layers: object, n_layers: int) -> list[int]:
    """The layers to work on: all of them for None, else :func:`layer_indices` (checked up front, so a bad list fails
    before any replay)."""
    return list(range(n_layers)) if layers is None else layer_indices(layers, n_layers)


class NotFittedError(AttribError, ValueError, AttributeError):
    """An estimator used before ``fit`` (a ValueError and an AttributeError too, as scikit-learn's is)."""


def check_fitted(estimator: object, attribute: str) -> None:
    """Raise :class:`NotFittedError` unless ``estimator`` has its fitted ``attribute`` (trailing underscore)."""
    if not hasattr(estimator, attribute):
        raise NotFittedError(f"this {type(estimator).__name__} is not fitted yet: call fit(...) first")


class NotFoundError(AttribError):
    """A trace id, model path or store that does not exist."""

    exit_code = EXIT_NOT_FOUND


class NoVerdictError(AttribError):
    """A method could not reach a verdict (e.g. a judge that never answered in range)."""

    exit_code = EXIT_NO_VERDICT
