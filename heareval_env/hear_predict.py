"""`python -m heareval.predictions.runner`, made to run on a current stack (torch >= 2.6, PyTorch
Lightning 1.9).  Usage: python heareval_env/hear_predict.py EMBEDDINGS/MODULE/TASK [runner options]

Two adjustments, both outside heareval's code:
1. torch >= 2.6 loads checkpoints with weights_only=True by default; heareval's Lightning checkpoints
   pickle classes in their hyper-parameters, so the old default is restored for this process.
2. heareval sets `trainer.fit_loop.current_epoch` to pick the best epoch's event post-processing;
   Lightning 1.6+ has no such property, the assignment does nothing and event tasks fail with a
   KeyError.  The property is re-added on top of `epoch_progress.current.completed`.
"""
import os

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

from pytorch_lightning.loops import fit_loop  # noqa: E402

if not hasattr(fit_loop.FitLoop, "current_epoch"):
    fit_loop.FitLoop.current_epoch = property(
        lambda self: self.epoch_progress.current.completed,
        lambda self, value: setattr(self.epoch_progress.current, "completed", value))

from heareval.predictions.runner import runner  # noqa: E402

if __name__ == "__main__":
    runner()
