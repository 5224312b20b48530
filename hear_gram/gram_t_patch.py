"""HEAR module: GRAM-T, 16x8 (frequency x time) patches: 8 x 25 tokens per 2 s chunk; raw output 6144-d every 80 ms.

    model = load_model()            # or load_model("model.safetensors"), load_model("owner/repo@rev")
    emb, ts = get_timestamp_embeddings(audio, model)
    scene = get_scene_embeddings(audio, model)

Options and audio layouts: `hear_gram.runtime`.
"""

from .runtime import hear_module

VARIANT = "gram_t_patch"
load_model, get_scene_embeddings, get_timestamp_embeddings = hear_module(VARIANT)
