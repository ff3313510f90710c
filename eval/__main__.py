"""`python -m mimic.eval ARGS`: `mimic eval ARGS`, as a module a launcher can start once per process.

    accelerate launch --multi_gpu --num_processes 8 -m mimic.eval --data bench --model hf:... --out runs/x

On a machine with several GPUs accelerate picks its multi-process launcher by itself; on CPU (gloo) pass
`--multi_gpu`, which selects that launcher (torchrun), not GPUs. `mimic eval --num-processes N` runs exactly
this command. See `mimic.eval.runner` for how the ranks share the work.
"""

from __future__ import annotations

import sys

from mimic.cli import main

if __name__ == "__main__":
    sys.exit(main(["eval", *sys.argv[1:]]))
