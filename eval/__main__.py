"""`python -m mimic.eval ARGS`: `mimic eval ARGS`, as a module a launcher can start once per process.

    accelerate launch --multi_gpu --num_processes 8 -m mimic.eval --data bench --model hf:... --out runs/x

On a machine with several GPUs accelerate picks its multi-process launcher by itself; on CPU (gloo) pass
`--multi_gpu`, which selects that launcher (torchrun), not GPUs. `mimic eval --num-processes N` runs exactly
this command. See `mimic.eval.runner` for how the ranks share the work. Each rank ends when the process that
started it ends (`mimic.locks.die_with_parent`), whatever killed that one.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from mimic.locks import die_with_parent

        die_with_parent()  # first, before the imports: a rank must not outlive its launcher (mimic.locks)

    from mimic.cli import main

    sys.exit(main(["eval", *sys.argv[1:]]))
