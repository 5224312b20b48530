"""A stand-in for the `tensorflow` package, for hear-eval-kit 2021.1.3 and hearvalidator with PyTorch
models only.  Both import tensorflow at module level but use it only to recognise TF models
(`isinstance(model, tf.Module)`) and, when torch sees a GPU, to ask TF about GPUs.  Putting this
folder on PYTHONPATH saves installing 1 GB of TensorFlow.  Any real TF call raises."""


class Module:  # no torch module is an instance of this
    pass


class Tensor:
    pass


class Variable:
    pass


class _Test:
    @staticmethod
    def is_gpu_available(*args, **kwargs):
        return True  # heareval only asks when torch sees CUDA; answer so that it goes on with torch


test = _Test()
float32 = "float32"


def _unsupported(*args, **kwargs):
    raise NotImplementedError("tensorflow stand-in (heareval_env/tfstub): TensorFlow models are not supported")


convert_to_tensor = device = _unsupported


class random:  # noqa: N801
    uniform = staticmethod(_unsupported)
