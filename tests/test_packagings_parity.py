"""Parity on every packaging of the official GRAM-T patch fixture weights (issue 15): each file is loaded by
`hear_gram.gram_t_patch.load_model`, its chunk outputs compared with the official recording, and
`hear-gram check` run on it.  `pytest -s` prints the table packaging -> loads -> rel. error -> check."""

import json
import shutil

import pytest
import torch
from safetensors.torch import save_file

import hear_gram.gram_t_patch as gtp
from hear_gram.check import check
from hear_gram.checkpoint import is_head_key, save_model

from conftest import official_state_dict

TOL = 1e-5
HF_FULL = {"model_type": "gramt-binaural-frame", "architectures": ["GRAMTModel"],
           "auto_map": {"AutoConfig": "configuration_gramt.GRAMTConfig", "AutoModel": "model.GRAMTModel"},
           "patch_size": [16, 8], "frequency_stride": 16, "time_stride": 8, "encoder_hidden_dim": 768,
           "encoder_num_layers": 12, "encoder_num_heads": 12, "decoder_embedding_dim": 512,
           "decoder_window_sizes": [2, 5, 10, 25, 50, 100, 0, 0], "input_length": 200, "num_mel_bins": 128}


def _packagings(sd):
    """name -> (tensors, config.json dict or None); sd is the runtime-wrapper state dict of the fixture."""
    inner = {k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")}
    mel = {k: v for k, v in sd.items() if k.startswith("mel_spec.")}
    enc = {k: v for k, v in inner.items() if not is_head_key(k)}
    return {
        "Lightning module (no prefix)": (inner, None),
        "runtime wrapper / mixin repo (`model.` + `mel_spec.melspec.*`)": (sd, None),
        "Hub wrapper (`encoder.model.` + `encoder.mel_spec.*`)": ({"encoder." + k: v for k, v in sd.items()}, None),
        "transformers repo (`gramt.` + config.json)": ({"gramt." + k: v for k, v in inner.items()}, HF_FULL),
        "encoder-only (no prefix)": (enc, None),
        "encoder-only transformers (`gramt.` + config.json)": ({"gramt." + k: v for k, v in enc.items()}, HF_FULL),
        "hear_gram export (save_model of the encoder)": ("export", None),
    }


def test_every_packaging_loads_and_matches_the_official_outputs(official, tmp_path):
    sd = official_state_dict("gramt_frame")
    e = official.expected("gramt_frame")
    rows, failures, encoder = [], [], None
    for name, (tensors, config) in _packagings(sd).items():
        folder = tmp_path / "pkg"
        if tensors == "export":
            save_model(encoder, str(folder))
        else:
            folder.mkdir()
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / "model.safetensors"))
            if config is not None:
                (folder / "config.json").write_text(json.dumps(config))
        rt = gtp.load_model(str(folder))
        encoder = rt.model
        with torch.no_grad():
            tokens = rt.model.forward_features(e["chunk_logmel"])
            errs = [e.compare(f"chunk_{s}", rt.model.pool(tokens, s))[0] for s in ("raw", "mean", "cls")]
        lines, ok = check(str(folder))
        summary = "; ".join(ln.split(" with hear_gram")[0] for ln in lines
                            if ln.startswith(("layout", "variant", "pretraining head", "OK", "FAIL")))
        rows.append(f"| {name} | yes | {max(errs):.1e} | exit {0 if ok else 1}: {summary} |")
        if max(errs) > TOL or not ok:
            failures.append(name)
        shutil.rmtree(folder)
    print("\n| packaging | loads | max rel. err. (chunk raw/mean/cls) | hear-gram check |\n|---|---|---|---|")
    print("\n".join(rows))
    assert not failures, failures
