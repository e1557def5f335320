"""Errors raised by the model side.

ModelError
 ├── CardError            a model card is invalid or describes an impossible model
 ├── SourceError          the weights named by a card cannot be found
 ├── InputError           one client input cannot be embedded as sent
 │    ├── InputTooLongError
 │    └── UnknownTokenIdError
 └── EngineError          a forward pass failed

The service maps each class to an HTTP status in one table (server/errors.py).
"""

from __future__ import annotations


class ModelError(Exception):
    """Base class of every error raised by the `models` package."""


class CardError(ModelError):
    """A card field is invalid; `key` names it so start-up messages can point at it."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class SourceError(ModelError):
    """The model's weights or tokenizer cannot be located or loaded."""


class InputError(ModelError):
    """A client input the model cannot take; `index` is its position in the request."""

    def __init__(self, message: str, index: int | None = None, param: str = "input") -> None:
        super().__init__(message)
        self.index = index
        self.param = param


class InputTooLongError(InputError):
    pass


class UnknownTokenIdError(InputError):
    pass


class EngineError(ModelError):
    """A forward pass failed for reasons that are not the input's fault."""
