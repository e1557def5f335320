"""Choose the prompt prepended to a request's inputs, from the card and the request's fields."""

from __future__ import annotations

from typing import Literal

from models.card import ModelCard
from models.errors import InputError

InputType = Literal["query", "document"]


def select_prompt(
    card: ModelCard,
    *,
    input_type: InputType | None = None,
    prompt_name: str | None = None,
    instruction: str | None = None,
) -> str | None:
    """The prompt text, or None. Documents get no prompt unless the card has a 'document' prompt."""
    given = [name for name, value in (("input_type", input_type), ("prompt_name", prompt_name),
                                      ("instruction", instruction)) if value is not None]  # fmt: skip
    if len(given) > 1:
        raise InputError(f"give at most one of input_type, prompt_name, instruction (got {', '.join(given)})",
                         param=given[1])  # fmt: skip
    if instruction is not None:
        if card.instruction_template is None:
            raise InputError(
                f"model {card.name!r} takes no free instruction"
                + (f"; its named prompts are {sorted(card.prompts)} (use prompt_name)" if card.prompts else ""),
                param="instruction",
            )
        return card.instruction_template.format(instruction=instruction)
    if prompt_name is not None:
        if prompt_name not in card.prompts:
            available = ", ".join(sorted(card.prompts)) or "none"
            raise InputError(f"model {card.name!r} has no prompt {prompt_name!r} (available: {available})",
                             param="prompt_name")  # fmt: skip
        return card.prompts[prompt_name]
    if input_type is not None:
        return card.prompts.get(input_type)
    return card.prompts[card.default_prompt] if card.default_prompt else None
