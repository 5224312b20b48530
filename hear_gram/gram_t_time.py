"""HEAR module: GRAM-T, 128x2 (frequency x time) patches: 100 tokens per 2 s chunk; raw output 768-d every 20 ms.

    model = load_model()            # or load_model("model.safetensors"), load_model("owner/repo@rev")
    emb, ts = get_timestamp_embeddings(audio, model)
    scene = get_scene_embeddings(audio, model)

Options and audio layouts: `hear_gram.runtime`.
"""

from .runtime import load_runtime

VARIANT = "gram_t_time"


def load_model(model_file_path: str = "", **options):
    return load_runtime(VARIANT, model_file_path, **options)


def get_scene_embeddings(audio, model):
    return model.get_scene_embeddings(audio)


def get_timestamp_embeddings(audio, model):
    return model.get_timestamp_embeddings(audio)
