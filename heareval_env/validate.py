"""Run hearvalidator (PyPI 2021.0.2) on a HEAR module, accepting 32 kHz as hearvalidator 2021.0.6 does.

    python heareval_env/validate.py hear_gram.gram_t_patch [--model WEIGHTS] [--device cpu]

The PyPI release lists 16, 22.05, 44.1 and 48 kHz only (and crashes in its own error message on
32 kHz); its later GitHub release accepts 32 kHz.  Everything else is the released validator.
"""
import sys

import hearvalidator.validate as validate

if 32000 not in validate.ValidateModel.ACCEPTABLE_SAMPLE_RATE:
    validate.ValidateModel.ACCEPTABLE_SAMPLE_RATE.append(32000)

if __name__ == "__main__":
    sys.argv = ["hear-validator"] + sys.argv[1:]
    validate.main()
