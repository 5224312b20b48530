"""Where weights come from: a local file, a local folder, or a Hugging Face Hub repository.

`resolve_weights(spec, variant)` returns (path to model.safetensors, path to config.json or None):

- `""` / None: the variant's default Hub repo (`Variant.repo_id`, `Variant.revision`);
- an existing `.safetensors` file, or a folder holding `model.safetensors` (and maybe `config.json`);
- `"owner/name"` or `"owner/name@revision"`: that Hub repo.

Downloads go through `huggingface_hub.hf_hub_download`, so the standard cache (`HF_HOME`,
`HF_HUB_CACHE`), `HF_HUB_OFFLINE=1` and tokens (`HF_TOKEN`) behave as everywhere else.
"""

import os

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def _looks_like_repo_id(spec: str) -> bool:
    name = spec.split("@", 1)[0]
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not spec.endswith(".safetensors")


def _download(repo_id: str, revision: str, what: str):
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        weights = hf_hub_download(repo_id, WEIGHTS_NAME, revision=revision)
    except Exception as e:  # network, offline cache miss, auth, missing repo: all end here
        raise OSError(
            f"could not get {WEIGHTS_NAME} of {what} from the Hugging Face Hub repo {repo_id!r}"
            f"{'@' + revision if revision else ''}: {type(e).__name__}: {e}\n"
            f"Pass weights explicitly instead: load_model('path/to/model.safetensors'), a folder holding "
            f"{WEIGHTS_NAME}, or another repo as 'owner/name[@revision]' (model option repo_id=...). "
            f"Offline, the file must already be in the Hub cache (HF_HUB_CACHE).") from e
    try:
        config = hf_hub_download(repo_id, CONFIG_NAME, revision=revision)
    except EntryNotFoundError:
        config = None
    except Exception:  # offline and not cached: official repos may carry another config anyway
        config = None
    return weights, config


def resolve_weights(spec, variant, revision: str = None, repo_id: str = None):
    """-> (weights path, config.json path or None); see the module docstring."""
    spec = "" if spec is None else os.fspath(spec)
    if not spec:
        repo = repo_id or variant.repo_id
        note = "" if variant.repo_confirmed or repo_id else " (this default repo id is not confirmed by the authors)"
        return _download(repo, revision or variant.revision, f"{variant.name}{note}")
    if os.path.isdir(spec):
        w = os.path.join(spec, WEIGHTS_NAME)
        if not os.path.exists(w):
            raise FileNotFoundError(f"folder {spec} holds no {WEIGHTS_NAME}")
        c = os.path.join(spec, CONFIG_NAME)
        return w, (c if os.path.exists(c) else None)
    if os.path.exists(spec):
        c = os.path.join(os.path.dirname(os.path.abspath(spec)), CONFIG_NAME)
        return spec, (c if os.path.exists(c) else None)
    if _looks_like_repo_id(spec):
        repo, _, rev = spec.partition("@")
        return _download(repo, rev or revision, variant.name)
    raise FileNotFoundError(f"weights not found: {spec!r} is neither a file, a folder, nor a Hub repo id "
                            f"'owner/name[@revision]'")
