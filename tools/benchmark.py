"""The benchmark tool: ``python tools/benchmark.py TASK [options]`` (tasks: matting/bench/__init__.py).

    python tools/benchmark.py infer -c configs/default.yaml --ckpt CKPT --sizes 512 1024 --out docs/speed.md
    python tools/benchmark.py frontier experiments/efficiency --arms reference mnv3s_dw_quarter_s4 --sizes 512 1024
    python tools/benchmark.py train experiments/efficiency --arms reference mnv3s_dw_quarter_s4 --threads 1
    python tools/benchmark.py flops -c configs/default.yaml -c configs/recipes/modnet.yaml
    python tools/benchmark.py refiner | data | synthetic | metrics | commands ...
"""

import sys

from matting.bench import main

if __name__ == "__main__":
    sys.exit(main())
