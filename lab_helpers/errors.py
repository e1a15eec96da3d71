"""Errors a learner can act on: what failed, the likely cause, and the command that fixes it."""

from __future__ import annotations


class LabError(RuntimeError):
    """Base class. `fix` is the exact command or step that resolves the problem."""

    def __init__(self, what: str, *, cause: str = "", fix: str = "", details: str = "") -> None:
        self.what = what
        self.cause = cause
        self.fix = fix
        self.details = details
        super().__init__(self.message())

    def message(self) -> str:
        parts = [self.what]
        if self.cause:
            parts.append(f"Likely cause: {self.cause}")
        if self.fix:
            parts.append(f"Fix: {self.fix}")
        if self.details:
            parts.append(self.details)
        return "\n".join(parts)

    def _render_traceback_(self) -> list[str]:
        """How IPython shows this error in a notebook: its name, what failed, the likely cause
        and the fix, without the library frames above them (`%tb` still shows those)."""
        lines = str(self).splitlines() or [""]
        return [f"\x1b[31m{type(self).__name__}\x1b[0m: {lines[0]}", *lines[1:],
                "(run %tb in a cell to see the full traceback)"]


class ConfigError(LabError, ValueError):
    """A server configuration that is not allowed as given."""


class ModelNotFound(LabError):
    """The model is neither a prepared/local directory nor available offline."""


class ModelCacheError(LabError):
    """A prepared model could not be built or verified."""


class PortInUse(LabError):
    """The host port a server should bind is taken."""


class PodmanUnavailable(LabError):
    """Podman is missing or cannot run containers here."""


class ImageMissing(LabError):
    """The container image for the chosen profile is not built or pulled."""


class ImageBuildError(LabError):
    """Building the lab's container image failed."""


class InsufficientMemory(LabError):
    """Not enough free memory for the model plus its KV cache."""


class GPUUnavailable(LabError):
    """A GPU profile was chosen on a machine without a usable GPU."""


class ServerStartError(LabError):
    """The server process or container died, or never became healthy."""


class ServerNameInUse(LabError):
    """A server of that name runs in the other runtime."""


class ServerNotFound(LabError):
    """No lab server of that name is running."""
