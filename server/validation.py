"""Checks of request values against what the chosen model can do."""

from __future__ import annotations

from typing import Protocol

from models.card import ModelCard
from models.loader import LoadedModel
from models.prompts import InputType, select_prompt
from server.errors import InvalidRequestError


class PromptFields(Protocol):
    input_type: InputType | None
    prompt_name: str | None
    instruction: str | None


def prompt_for(card: ModelCard, request: PromptFields) -> str | None:
    return select_prompt(
        card, input_type=request.input_type, prompt_name=request.prompt_name, instruction=request.instruction
    )


def checked_dimensions(model: LoadedModel, dimensions: int | None) -> int | None:
    """The Matryoshka size to cut to, or None for the full vector; refuses sizes the model lacks."""
    if dimensions is None:
        return None
    full = model.dimensions
    allowed = model.allowed_dimensions()
    if allowed is None:
        if not 1 <= dimensions <= full:
            raise InvalidRequestError(
                f"dimensions must be between 1 and {full} for model {model.card.name!r} (got {dimensions})",
                param="dimensions",
            )
    elif dimensions not in allowed and dimensions != full:
        raise InvalidRequestError(
            f"model {model.card.name!r} was trained for dimensions {sorted({*allowed, full})}; got {dimensions}",
            param="dimensions",
        )
    return dimensions if dimensions < full else None
