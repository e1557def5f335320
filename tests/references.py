"""Independent reference implementations the server is checked against."""

from __future__ import annotations

import numpy as np
import torch


def reference_late_chunking(tokenizer, model, chunks: list[str], window: int, overlap: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Chunks are concatenated as they are (they carry their own whitespace)."""
    text = "".join(chunks)
    encoded = tokenizer(text, return_offsets_mapping=True, add_special_tokens=True)
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    # The paper's _embed_with_overlap: raw slices of the token sequence.
    with torch.inference_mode():
        if len(ids) <= window:
            states = model(input_ids=torch.tensor([ids])).last_hidden_state[0]
        else:
            pieces = []
            for start in range(0, len(ids), window - overlap):
                end = min(start + window, len(ids))
                out = model(input_ids=torch.tensor([ids[start:end]])).last_hidden_state[0]
                pieces.append(out if start == 0 else out[overlap:])
                if end >= len(ids):
                    break
            states = torch.cat(pieces)
    assert states.shape[0] == len(ids)
    bounds = np.cumsum([0] + [len(chunk) for chunk in chunks])
    owner = []
    for index, (start, _) in enumerate(offsets):
        if index == 0:
            owner.append(0)  # [CLS] folds into the first chunk
        elif index == len(ids) - 1:
            owner.append(len(chunks) - 1)  # [SEP] into the last
        else:
            owner.append(int(np.searchsorted(bounds, start, side="right") - 1))
    vectors = []
    for chunk in range(len(chunks)):
        rows = [i for i, o in enumerate(owner) if o == chunk]
        vector = states[rows].mean(0).numpy()
        vectors.append(vector / np.linalg.norm(vector))
    return np.stack(vectors)
