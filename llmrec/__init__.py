"""llmrec: are large language models good movie recommenders?

A thin library behind the report in ``notebooks/``: MovieLens records, prompts,
decoding, LoRA training, title matching, metrics and baselines. Notebooks import it
and narrate; they never re-implement it.
"""

__version__ = "0.1.0"

from llmrec.errors import LlmrecError  # noqa: E402,F401
