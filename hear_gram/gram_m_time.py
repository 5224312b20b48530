"""HEAR module: GRAM-M, 128x2 (frequency x time) patches: 100 tokens per 2 s chunk; raw output 768-d every 20 ms.

    model = load_model()            # or load_model("model.safetensors"), load_model("owner/repo@rev")
    emb, ts = get_timestamp_embeddings(audio, model)
    scene = get_scene_embeddings(audio, model)

Options and audio layouts: `hear_gram.runtime`.

GRAM-M's encoder is a causal (left-to-right) Mamba2 scan with the CLS token at position 0, so the
`cls` output sees only itself and does not depend on the audio (gram_spec §3.2): use `raw` or `mean`
(the paper localises from the mean of the patch tokens).  The official GRAM-M Hub repository id is
not confirmed; `hear_gram.model.VARIANTS["gram_m_time"].repo_id` is the default, and
`load_model("file.safetensors" | "folder" | "owner/repo[@revision]")` takes any other source.
"""

from .runtime import hear_module

VARIANT = "gram_m_time"
load_model, get_scene_embeddings, get_timestamp_embeddings = hear_module(VARIANT)
